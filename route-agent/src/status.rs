//! `route-agent status`: a running agent's peers and kernel routes, read
//! from its admin API (`/api/v1/status`) and printed the way
//! `calicoctl node status` and `birdc show protocols` do, or as JSON.
//!
//! The request is one blocking `GET` over a std `TcpStream` with timeouts:
//! a command that runs once needs no async runtime or HTTP client crate.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::admin::dto::{PeerDoc, ROUTE_KINDS, StatusDoc};
use crate::config::{Config, DEFAULT_ADMIN_PORT};

/// How long to wait for the agent to accept, and then for each read or
/// write.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Answers larger than this are refused rather than read into memory.
const MAX_RESPONSE: u64 = 64 << 20;

/// Exit code for a config file that cannot be used (as `check-config`).
const EXIT_CONFIG: u8 = 2;

/// Which agent to ask, and how to print its answer: the options
/// `status`, `neighbor` and `rib` share.
#[derive(Clone, Debug, clap::Args)]
pub struct AdminArgs {
    /// Print the agent's JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The admin API address [default: admin.listen from --config, else
    /// 127.0.0.1:9179].
    #[arg(long, env = "ROUTE_AGENT_ADMIN", value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Take the admin address from this config file (`admin.listen`).
    #[arg(long, env = "ROUTE_AGENT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `route-agent status` options.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// The agent to ask and the output form.
    #[command(flatten)]
    pub target: AdminArgs,
    /// List every kernel route the agent installed (`ip route` form), not
    /// only their count.
    #[arg(long)]
    pub routes: bool,
}

/// Why the agent's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing accepted the connection.
    #[error(
        "cannot reach the route-agent admin API at {addr}: {} — is route-agent running?",
        Reason(source)
    )]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The OS error (`connection refused`, a timeout).
        source: std::io::Error,
    },
    /// The connection broke or timed out during the exchange.
    #[error(
        "the route-agent admin API at {addr} did not answer: {}",
        Reason(source)
    )]
    Exchange {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// What came back is not an HTTP answer we understand.
    #[error("the route-agent admin API at {addr} sent a malformed answer: {problem}")]
    Malformed {
        /// The address.
        addr: SocketAddr,
        /// What was wrong.
        problem: Malformed,
    },
    /// The answer was not 200.
    #[error("the route-agent admin API at {addr} answered {path} with {code}: {body}")]
    Status {
        /// The address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// The HTTP status code.
        code: u16,
        /// The answer's first line.
        body: String,
    },
    /// The JSON did not parse (an agent of another version?).
    #[error(
        "cannot read the status from {addr}: {source} — is the agent the same version as this command?"
    )]
    Json {
        /// The address.
        addr: SocketAddr,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// What is wrong with an answer that is not the HTTP/1 we expect; the
/// text fields quote what arrived.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The headers never end (no empty line).
    #[error("no end of headers")]
    NoEndOfHeaders,
    /// The headers are not UTF-8.
    #[error("headers are not UTF-8")]
    HeadersNotUtf8,
    /// The status line is not HTTP/1.x (another protocol on the port).
    #[error("not HTTP/1: {status_line:?}")]
    NotHttp1 {
        /// The first line received.
        status_line: String,
    },
    /// The status line has no status code.
    #[error("bad status line {status_line:?}")]
    BadStatusLine {
        /// The first line received.
        status_line: String,
    },
    /// A header line without a colon.
    #[error("bad header {line:?}")]
    BadHeader {
        /// The line.
        line: String,
    },
    /// Chunked transfer coding, which the admin API never sends.
    #[error("chunked transfer coding is not supported")]
    Chunked,
    /// A `Content-Length` that is not a number.
    #[error("bad content-length {value:?}")]
    BadContentLength {
        /// The header's value.
        value: String,
    },
    /// Fewer body bytes than `Content-Length` says.
    #[error("body cut short: {got} of {expected} bytes")]
    CutShort {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
}

/// An OS error as `route-agent status` says it: `connection refused`, `no
/// answer within 5 s`, else the OS's words.
struct Reason<'a>(&'a std::io::Error);

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::ErrorKind;
        match self.0.kind() {
            ErrorKind::ConnectionRefused => f.write_str("connection refused"),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                write!(f, "no answer within {} s", TIMEOUT.as_secs())
            }
            _ => self.0.fmt(f),
        }
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub code: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `METHOD path` to `addr` (HTTP/1.1, `Connection: close`) and reads
/// the whole answer, each step bounded by `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<HttpResponse, FetchError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| FetchError::Connect { addr, source })?;
    let exchange = |source: std::io::Error| FetchError::Exchange { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).map_err(exchange)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(exchange)?;
    parse_response(&raw, method == "HEAD")
        .map_err(|problem| FetchError::Malformed { addr, problem })
}

/// Splits an HTTP/1.x answer (read until the server closed) into status,
/// headers and body. The answer to a `HEAD` has no body whatever its
/// `Content-Length` says (RFC 9110 §9.3.2).
fn parse_response(raw: &[u8], head_request: bool) -> Result<HttpResponse, Malformed> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(Malformed::NoEndOfHeaders)?;
    let (head, rest) = raw.split_at(end);
    let mut body = rest.get(4..).unwrap_or_default().to_vec();
    let head = std::str::from_utf8(head).map_err(|_| Malformed::HeadersNotUtf8)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Malformed::NotHttp1 {
            status_line: status_line.to_owned(),
        });
    }
    let code =
        parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Malformed::BadStatusLine {
                status_line: status_line.to_owned(),
            })?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| Malformed::BadHeader {
            line: line.to_owned(),
        })?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let response = HttpResponse {
        code,
        headers,
        body: Vec::new(),
    };
    // The admin API always sends a known length; chunked coding would mean
    // another server is on the port.
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return Err(Malformed::Chunked);
    }
    if head_request {
        body.clear();
    } else if let Some(len) = response.header("content-length") {
        let expected: usize = len.parse().map_err(|_| Malformed::BadContentLength {
            value: len.to_owned(),
        })?;
        if body.len() < expected {
            return Err(Malformed::CutShort {
                got: body.len(),
                expected,
            });
        }
        body.truncate(expected);
    }
    Ok(HttpResponse { body, ..response })
}

/// Fetches `/api/v1/status` from the agent at `addr`: the raw JSON and the
/// parsed document.
pub fn fetch(addr: SocketAddr) -> Result<(String, StatusDoc), FetchError> {
    fetch_json(addr, "/api/v1/status")
}

/// Fetches one of the admin API's JSON documents (`/api/v1/...`): the raw
/// JSON and the parsed document.
pub fn fetch_json<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
) -> Result<(String, T), FetchError> {
    let r = request(addr, "GET", path, TIMEOUT)?;
    if r.code != 200 {
        return Err(FetchError::Status {
            addr,
            path: path.to_owned(),
            code: r.code,
            body: r.text().lines().next().unwrap_or_default().to_owned(),
        });
    }
    let doc =
        serde_json::from_slice(&r.body).map_err(|source| FetchError::Json { addr, source })?;
    Ok((r.text(), doc))
}

/// The address to ask: `--admin`, else `admin.listen` from `--config`,
/// else the default. A wildcard listen address is asked on loopback.
pub fn admin_address(args: &AdminArgs) -> Result<SocketAddr, crate::config::ConfigError> {
    let mut addr = match (&args.admin, &args.config) {
        (Some(a), _) => *a,
        (None, Some(file)) => Config::load(file)?.admin.listen,
        (None, None) => SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_ADMIN_PORT)),
    };
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    Ok(addr)
}

/// Runs `route-agent status`: 0 when the agent answered (ready or not), 1
/// when it could not be reached, 2 for an unusable config file.
pub fn run(args: &StatusArgs) -> ExitCode {
    ask(
        &args.target,
        "status",
        "/api/v1/status",
        |doc: &StatusDoc| Ok(render(doc, args.routes)),
    )
}

/// Runs one admin-API command: fetches `path` from the agent `args`
/// names, prints the raw JSON (`--json`) or what `show` makes of it.
/// `show` fails with the message and exit code of an answer that does not
/// have what was asked for (a neighbour or prefix that is not there).
/// Exit codes: 0 shown, 1 agent unreachable or `show` refused, 2 an
/// unusable config file.
pub fn ask<T: serde::de::DeserializeOwned>(
    args: &AdminArgs,
    command: &str,
    path: &str,
    show: impl FnOnce(&T) -> Result<String, crate::inspect::NotThere>,
) -> ExitCode {
    let addr = match admin_address(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (raw, doc) = match fetch_json::<T>(addr, path) {
        Ok(got) => got,
        Err(e) => {
            eprintln!("route-agent {command}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match show(&doc) {
        Ok(_) if args.json => {
            print!("{raw}");
            ExitCode::SUCCESS
        }
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("route-agent {command}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `1h02m03s`, `4d03h`, `59s`: short like BIRD's and GoBGP's uptimes.
pub fn format_uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// An ASCII table like `calicoctl node status`: headers centred, cells
/// left-aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = rule.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let _ = write!(out, "| {h:^w$} ");
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(out, "| {cell:<w$} ");
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}

fn peer_row(p: &PeerDoc) -> Vec<String> {
    let info = if let Some(e) = &p.last_error {
        e.clone()
    } else if let Some(n) = &p.last_notification {
        n.clone()
    } else {
        String::new()
    };
    vec![
        p.address.to_string(),
        p.asn.to_string(),
        crate::inspect::peer_type(p),
        p.state.clone(),
        p.uptime_seconds
            .map_or_else(|| "-".to_owned(), format_uptime),
        format!("{}/{}", p.prefixes_accepted, p.prefixes_received),
        p.prefixes_advertised.to_string(),
        info,
    ]
}

/// The human form of a status document: a summary, and with `routes`
/// every kernel route the agent installed.
pub fn render(doc: &StatusDoc, routes: bool) -> String {
    let mut out = String::new();
    let name = doc.node.name.as_deref().unwrap_or("(unnamed node)");
    let address = doc
        .node
        .address
        .map_or_else(|| "no address".to_owned(), |a| a.to_string());
    let _ = writeln!(
        out,
        "route-agent {} on {name} ({address}, {} mtu {})",
        doc.version, doc.node.underlay, doc.node.underlay_mtu
    );
    if doc.ready {
        out.push_str("Ready\n");
    } else {
        let _ = writeln!(out, "Not ready: {}", doc.unmet.join("; "));
    }
    let headers = [
        "PEER ADDRESS",
        "PEER AS",
        "PEER TYPE",
        "STATE",
        "SINCE",
        "IMPORTED",
        "EXPORTED",
        "INFO",
    ];
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        let rows: Vec<Vec<String>> = doc
            .peers
            .iter()
            .filter(|p| p.address.is_ipv4() == v4)
            .map(peer_row)
            .collect();
        let _ = writeln!(out, "\n{family} BGP status");
        if rows.is_empty() {
            let _ = writeln!(out, "No {family} peers found.");
        } else {
            out.push_str(&table(&headers, &rows));
        }
    }
    if !doc.peers.is_empty() {
        out.push_str("(IMPORTED: prefixes accepted/received)\n");
    }

    let fib = &doc.fib;
    let total: u64 = fib.installed_by_kind.values().sum();
    let kinds: Vec<String> = ROUTE_KINDS
        .iter()
        .filter_map(|k| {
            let n = fib.installed_by_kind.get(*k).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {k}"))
        })
        .collect();
    let sync = match (fib.started, fib.in_sync) {
        (false, _) => "not started",
        (true, true) => "in sync",
        (true, false) => "NOT in sync",
    };
    let _ = write!(out, "\nRoutes: {total} installed");
    if !kinds.is_empty() {
        let _ = write!(out, " ({})", kinds.join(", "));
    }
    let _ = writeln!(out, ", {sync}, {} rejected", fib.rejected_total());
    if fib.nexthop_objects {
        let _ = writeln!(
            out,
            "  gateway routes through kernel nexthop objects (`ip route` shows nhid)"
        );
    }
    for (reason, n) in fib.rejected.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(out, "  rejected {reason}: {n}");
    }
    let _ = writeln!(
        out,
        "Reconciles: {}, netlink batches: {}, kernel errors: {}",
        fib.reconciles, fib.netlink_batches, fib.errors
    );
    if let Some(e) = &fib.last_error {
        let _ = writeln!(out, "Last error: {e}");
    }
    let tunnel = &doc.tunnel;
    if tunnel.backend == "none" {
        out.push_str("Tunnel: none\n");
    } else {
        let _ = writeln!(out, "Tunnel: {} ({})", tunnel.device, tunnel.backend);
    }
    if let Some(note) = &tunnel.note {
        let _ = writeln!(out, "  {note}");
    }
    if let Some(f) = &doc.ipip_filter {
        let _ = writeln!(
            out,
            "  IPIP filter: accepted from {} nodes, {} packets dropped",
            f.nodes, f.dropped_packets
        );
        if let Some(e) = &f.error {
            let _ = writeln!(out, "  IPIP filter error: {e}");
        }
    }
    if let Some(b) = &doc.bpf_tunnel {
        let _ = writeln!(
            out,
            "  bpf programs: encap {}, decap {} (pinned in {}); {} blocks, IPIP accepted from {} nodes",
            b.encap_program, b.decap_program, b.pin_dir, b.blocks, b.nodes
        );
        let _ = writeln!(
            out,
            "  bpf packets: {} encapsulated, {} decapsulated, {} dropped from non-nodes, {} without a block entry, {} errors; GSO: {}",
            b.packets("egress", "encapsulated"),
            b.packets("ingress", "decapsulated"),
            b.packets("ingress", "not_node"),
            b.packets("egress", "no_node"),
            b.packets("egress", "error") + b.packets("ingress", "error"),
            b.gso
        );
        if let Some(e) = &b.error {
            let _ = writeln!(out, "  bpf tunnel error: {e}");
        }
    }
    if tunnel.failures > 0 {
        let _ = writeln!(
            out,
            "  {} failed set-ups or exits since the start",
            tunnel.failures
        );
    }
    if routes && !fib.installed.is_empty() {
        out.push_str("\nKernel routes (ip route):\n");
        for r in &fib.installed {
            let _ = writeln!(out, "  {}", r.route);
        }
    } else if !fib.installed.is_empty() {
        out.push_str("(`route-agent status --routes` lists the kernel routes; `route-agent rib` the BGP table)\n");
    }
    out
}

#[cfg(test)]
mod tests;
