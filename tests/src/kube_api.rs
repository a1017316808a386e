//! **A test double of the Kubernetes API server** — for tests only; no
//! product code depends on it (route-agent has it as a dev-dependency of
//! its tests).
//!
//! No API server can be installed on the machines this project is tested
//! on, so the agents' `datastore: kubernetes` is tested against this
//! double. It speaks, over plain HTTP/1.1, the part of the real protocol
//! the `kube` client's Node watcher and the agent use, with the real JSON
//! shapes:
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/v1/nodes` | a `NodeList` with `metadata.resourceVersion` |
//! | `GET /api/v1/nodes?watch=true&resourceVersion=N` (`allowWatchBookmarks`, `timeoutSeconds`) | newline-delimited watch events `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` after N, then live ones; for an expired N an `ERROR` event with a `Status` of code 410 (`Expired`), as the real server, which makes the client list again |
//! | `GET /api/v1/nodes/NAME` | the Node, or a 404 `Status` |
//! | `PATCH /api/v1/nodes/NAME/status` | strategic-merge (conditions merged by `type`) or JSON merge patch; recorded, and a `MODIFIED` event |
//! | `POST /api/v1/namespaces/NS/events` | `201` and recorded, or `409 AlreadyExists` for a name already taken |
//! | anything else | a 404 `Status` |
//!
//! Test controls: add, change and delete Nodes; expire the history (the
//! next watch from an old resourceVersion gets 410: a forced relist); send
//! a bookmark; go away (the listener closes, open connections drop: the
//! client sees connection refused) and come back on the same address.
//! Timestamps are synthetic (ordered by creation). The listener can be
//! opened inside a network namespace ([`KubeApi::start_in_netns`]), so
//! agents in the test's namespaces reach it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// What the double has seen and holds.
#[derive(Debug, Default)]
struct ApiState {
    /// The newest resourceVersion.
    rv: u64,
    nodes: BTreeMap<String, Value>,
    /// Watch events by resourceVersion: (rv, type, object).
    history: Vec<(u64, &'static str, Value)>,
    /// A watch from a resourceVersion below this one gets 410.
    oldest: u64,
    watchers: Vec<mpsc::UnboundedSender<Bytes>>,
    created: u64,
    patches: Vec<(String, Value)>,
    events: BTreeMap<String, Value>,
    /// Requests as `METHOD path?query`, in order.
    requests: Vec<String>,
}

impl ApiState {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Records a watch event and sends it to every open watch.
    fn emit(&mut self, kind: &'static str, object: Value) {
        let line = event_line(kind, &object);
        self.history.push((self.rv, kind, object));
        self.watchers.retain(|w| w.send(line.clone()).is_ok());
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// The Kubernetes API server double; stops on drop.
#[derive(Debug)]
pub struct KubeApi {
    state: Arc<Mutex<ApiState>>,
    addr: SocketAddr,
    netns: Option<String>,
    runtime: tokio::runtime::Runtime,
    /// `true` while serving; `false` closes the listener and connections.
    serving: watch::Sender<bool>,
}

/// Opens a listener on `addr`, inside `netns` when given (a socket stays in
/// the namespace it was made in, whichever thread uses it later).
fn listen(netns: Option<&str>, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let Some(ns) = netns else {
        return TcpListener::bind(addr);
    };
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        enter_netns(&file)?;
        TcpListener::bind(addr)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("listener thread panicked")))
}

/// setns(2) into the network namespace `file` names, for this thread only.
#[allow(unsafe_code)]
pub(crate) fn enter_netns(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) takes a valid fd (kept open by `file` for the call)
    // and changes only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl KubeApi {
    /// Serves on `addr` in this process's namespace (port 0: any).
    pub fn start(addr: SocketAddr) -> KubeApi {
        KubeApi::start_at(None, addr)
    }

    /// Serves on `addr` inside network namespace `netns` (`ip netns`
    /// name), e.g. the router of a namespace cluster, which every node
    /// reaches.
    pub fn start_in_netns(netns: &str, addr: Ipv4Addr) -> KubeApi {
        KubeApi::start_at(Some(netns.to_owned()), SocketAddr::from((addr, 0)))
    }

    fn start_at(netns: Option<String>, addr: SocketAddr) -> KubeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the API double's runtime");
        let listener = listen(netns.as_deref(), addr).expect("the API double's listener");
        let addr = listener.local_addr().expect("its address");
        let (serving, _) = watch::channel(true);
        let api = KubeApi {
            state: Arc::new(Mutex::new(ApiState::default())),
            addr,
            netns,
            runtime,
            serving,
        };
        api.serve(listener);
        api
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let mut serving = self.serving.subscribe();
        let _guard = self.runtime.enter();
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let conn_stop = serving.clone();
        self.runtime.spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = state.clone();
                        let mut stop = conn_stop.clone();
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(handle(&state, req).await) }
                            });
                            let conn = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                            tokio::select! {
                                _ = conn => {}
                                _ = stop.wait_for(|s| !*s) => {}
                            }
                        });
                    }
                    _ = serving.wait_for(|s| !*s) => return,
                }
            }
        });
    }

    /// The URL the agents are given (`http://ADDR:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file's text pointing at the double (no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\nusers:\n- name: agent\n  user: {{}}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: agent\ncurrent-context: double\n",
            self.url()
        )
    }

    fn lock(&self) -> MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `node` (a Node's JSON, e.g. from [`node_json`]) or replaces the
    /// Node of that name: `ADDED` or `MODIFIED`.
    pub fn apply_node(&self, mut node: Value) {
        let mut s = self.lock();
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let rv = s.bump();
        let old = s.nodes.get(&name).cloned();
        let meta = &mut node["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        match &old {
            Some(o) => {
                meta["uid"] = o["metadata"]["uid"].clone();
                meta["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
            }
            None => {
                s.created += 1;
                let n = s.created;
                let meta = &mut node["metadata"];
                meta["uid"] = json!(format!("00000000-0000-4000-8000-{n:012}"));
                meta["creationTimestamp"] = json!(format!(
                    "2026-01-01T{:02}:{:02}:{:02}Z",
                    n / 3600,
                    n / 60 % 60,
                    n % 60
                ));
            }
        }
        s.nodes.insert(name, node.clone());
        s.emit(if old.is_some() { "MODIFIED" } else { "ADDED" }, node);
    }

    /// Changes Node `name` with `f` (a `MODIFIED` event).
    pub fn update_node(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut node = self.node(name).unwrap_or_else(|| panic!("no Node {name}"));
        f(&mut node);
        self.apply_node(node);
    }

    /// Deletes Node `name` (a `DELETED` event).
    pub fn delete_node(&self, name: &str) {
        let mut s = self.lock();
        if let Some(mut node) = s.nodes.remove(name) {
            let rv = s.bump();
            node["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.emit("DELETED", node);
        }
    }

    /// Node `name` as served now.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.lock().nodes.get(name).cloned()
    }

    /// Forgets the history (as etcd compaction does) and ends every open
    /// watch: the clients watch again from their last resourceVersion,
    /// get `410 Gone` and list again.
    pub fn expire_history(&self) {
        let mut s = self.lock();
        s.oldest = s.rv + 1;
        s.history.clear();
        s.watchers.clear();
    }

    /// Sends a `BOOKMARK` with the current resourceVersion on every open
    /// watch.
    pub fn bookmark(&self) {
        let mut s = self.lock();
        let line = event_line(
            "BOOKMARK",
            &json!({"kind": "Node", "apiVersion": "v1",
                    "metadata": {"resourceVersion": s.rv.to_string()}}),
        );
        s.watchers.retain(|w| w.send(line.clone()).is_ok());
    }

    /// Stops serving: the listener closes (connections are refused) and
    /// every open connection, watches included, drops.
    pub fn go_away(&self) {
        self.serving.send_replace(false);
        self.lock().watchers.clear();
    }

    /// Serves again on the same address.
    pub fn come_back(&self) {
        // Give the old accept loop a moment to drop its socket.
        std::thread::sleep(Duration::from_millis(50));
        let listener = listen(self.netns.as_deref(), self.addr).expect("the listener again");
        self.serving.send_replace(true);
        self.serve(listener);
    }

    /// Every status PATCH so far: (node, patch body).
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.lock().patches.clone()
    }

    /// Every Event created so far, by name.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.values().cloned().collect()
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.serving.send_replace(false);
    }
}

/// A Node as a kubelet and kube-controller-manager leave it: InternalIP
/// and Hostname addresses, `podCIDR`/`podCIDRs`, `Ready` and
/// `NetworkUnavailable` (True until a network plugin clears it).
pub fn node_json(name: &str, internal_ip: &str, pod_cidrs: &[&str]) -> Value {
    let mut spec = json!({});
    if let Some(first) = pod_cidrs.first() {
        spec["podCIDR"] = json!(first);
        spec["podCIDRs"] = json!(pod_cidrs);
    }
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated",
                 "message": "Node created without a route",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        },
    })
}

/// A `Status` object as the API server sends for errors.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// A response body: whole, or a stream of watch lines.
enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn reply(code: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body.to_string()))));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn handle(state: &Arc<Mutex<ApiState>>, req: Request<Incoming>) -> Response<Body> {
    let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = req.uri().path().to_owned();
    let q = query(&req);
    let method = req.method().clone();
    lock().requests.push(format!(
        "{method} {path}{}",
        req.uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    ));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["api", "v1", "nodes"]) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch_nodes(state, &q);
            }
            let s = lock();
            let items: Vec<Value> = s.nodes.values().cloned().collect();
            reply(
                StatusCode::OK,
                &json!({"kind": "NodeList", "apiVersion": "v1",
                        "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
            )
        }
        (&Method::GET, ["api", "v1", "nodes", name]) => match lock().nodes.get(*name) {
            Some(n) => reply(StatusCode::OK, n),
            None => not_found(name),
        },
        (&Method::PATCH, ["api", "v1", "nodes", name, "status"]) => {
            let name = (*name).to_owned();
            let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                return reply(StatusCode::BAD_REQUEST, &status(400, "BadRequest", "body"));
            };
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &status(400, "BadRequest", "not JSON"),
                );
            };
            let mut s = lock();
            let Some(mut node) = s.nodes.get(&name).cloned() else {
                return not_found(&name);
            };
            merge_status(&mut node, &patch);
            let rv = s.bump();
            node["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.nodes.insert(name.clone(), node.clone());
            s.patches.push((name, patch));
            s.emit("MODIFIED", node.clone());
            reply(StatusCode::OK, &node)
        }
        (&Method::POST, ["api", "v1", "namespaces", ns, "events"]) => {
            let ns = (*ns).to_owned();
            let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                return reply(StatusCode::BAD_REQUEST, &status(400, "BadRequest", "body"));
            };
            let Ok(mut event) = serde_json::from_slice::<Value>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &status(400, "BadRequest", "not JSON"),
                );
            };
            let mut s = lock();
            let name = event["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if s.events.contains_key(&name) {
                let message = format!("events \"{name}\" already exists");
                let mut st = status(409, "AlreadyExists", &message);
                st["details"] = json!({"name": name, "kind": "events"});
                return reply(StatusCode::CONFLICT, &st);
            }
            let rv = s.bump();
            event["metadata"]["namespace"] = json!(ns);
            event["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.events.insert(name, event.clone());
            reply(StatusCode::CREATED, &event)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
    }
}

fn not_found(name: &str) -> Response<Body> {
    let mut st = status(404, "NotFound", &format!("nodes \"{name}\" not found"));
    st["details"] = json!({"name": name, "kind": "nodes"});
    reply(StatusCode::NOT_FOUND, &st)
}

/// A watch: the events after the asked resourceVersion, then live ones;
/// `410` as an ERROR event for an expired one. Ends after
/// `timeoutSeconds`.
fn watch_nodes(state: &Arc<Mutex<ApiState>>, q: &BTreeMap<String, String>) -> Response<Body> {
    let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
    let s = &mut *guard;
    let (tx, rx) = mpsc::unbounded_channel();
    let from = q.get("resourceVersion").and_then(|v| v.parse::<u64>().ok());
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    match from {
        // "0" or none: the current state as ADDED events, then live ones.
        None | Some(0) => {
            for n in s.nodes.values() {
                let _ = tx.send(event_line("ADDED", n));
            }
        }
        Some(rv) if rv < s.oldest => {
            let message = format!("too old resource version: {rv} ({})", s.oldest);
            let _ = tx.send(event_line("ERROR", &status(410, "Expired", &message)));
            let mut r = Response::new(Body::Stream(rx));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return r;
        }
        Some(rv) => {
            for (at, kind, object) in &s.history {
                if *at > rv {
                    let _ = tx.send(event_line(kind, object));
                }
            }
        }
    }
    if bookmarks {
        let _ = tx.send(event_line(
            "BOOKMARK",
            &json!({"kind": "Node", "apiVersion": "v1",
                    "metadata": {"resourceVersion": s.rv.to_string()}}),
        ));
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(290);
    // The only sender is the registered one: the stream ends when it is
    // dropped (expired history, going away, or timeoutSeconds below).
    let weak = tx.downgrade();
    s.watchers.push(tx);
    drop(guard);
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(timeout)).await;
        if let Some(tx) = weak.upgrade() {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            s.watchers.retain(|w| !w.same_channel(&tx));
        }
    });
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A strategic-merge patch of a Node's status as the API server applies
/// it: `status.conditions` merged by `type`, the rest as a JSON merge
/// patch (RFC 7386).
fn merge_status(node: &mut Value, patch: &Value) {
    let mut patch = patch.clone();
    if let Some(conds) = patch["status"]
        .as_object_mut()
        .and_then(|s| s.remove("conditions"))
        .and_then(|c| c.as_array().cloned())
    {
        let current = &mut node["status"]["conditions"];
        if !current.is_array() {
            *current = json!([]);
        }
        if let Some(list) = current.as_array_mut() {
            for c in conds {
                match list.iter_mut().find(|x| x["type"] == c["type"]) {
                    Some(existing) => merge(existing, &c),
                    None => list.push(c),
                }
            }
        }
    }
    merge(node, &patch);
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_merge_by_type_and_the_rest_as_a_merge_patch() {
        let mut n = node_json("a", "10.0.0.1", &["10.244.1.0/24"]);
        merge_status(
            &mut n,
            &json!({"status": {"conditions": [
                {"type": "NetworkUnavailable", "status": "False", "reason": "RouteAgentIsUp"}]}}),
        );
        let conds = n["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["status"], "False");
        assert_eq!(conds[0]["reason"], "RouteAgentIsUp");
        assert_eq!(conds[1]["type"], "Ready");
        assert_eq!(n["status"]["addresses"][0]["address"], "10.0.0.1");
    }
}
