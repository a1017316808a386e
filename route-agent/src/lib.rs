//! The pod-route daemon: it turns best BGP routes into kernel routes.
//!
//! Not built yet: the planner, FIB reconciler, daemon binary and admin API
//! are tracked in the route-agent issue. The crate exists so the workspace
//! has the shape the design fixes.
