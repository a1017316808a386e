//! A three-member etcd cluster (Debian's `etcd-server`) in network
//! namespaces, for the tests of `datastore: etcd`.
//!
//! ```text
//!                 switch namespace: bridge br0
//!      ┌────────────────┬───────┴────────┬──────────────────┐
//!  member 1         member 2         member 3        client namespaces
//!  10.199.0.1/24    10.199.0.2/24    10.199.0.3/24   10.199.0.100+N/24
//! ```
//!
//! Each member is its own namespace, so a test can kill one (or two, to
//! lose quorum) and start it again on its data directory. Everything is
//! torn down on drop, on every path: the members are killed, then the
//! namespaces and the data directories are deleted. Each cluster has its
//! own switch namespace, so clusters of parallel tests never meet.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::{Daemon, Netns, Scratch};

/// The members' subnet inside a cluster's switch namespace.
const SUBNET: [u8; 3] = [10, 199, 0];
/// How long a member may take to answer `/health` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Fails the calling test with the install command unless `etcd` (Debian's
/// `etcd-server`) is on PATH.
pub fn require_etcd() {
    let found = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "etcd is not installed: the etcd tests need Debian's etcd-server \
         (apt-get install -y etcd-server; scripts/install-deps.sh installs it)"
    );
}

/// One member: its namespace, address and process (`None` while killed).
#[derive(Debug)]
struct Member {
    name: String,
    ns: Netns,
    address: Ipv4Addr,
    process: Option<Daemon>,
    /// How many times it was started (each life logs to its own file).
    lives: usize,
}

/// A three-member etcd cluster; see the module doc.
#[derive(Debug)]
pub struct EtcdCluster {
    // Drop order: processes (inside `members`) before namespaces, and the
    // scratch directory (data and logs) last.
    members: Vec<Member>,
    clients: Vec<Netns>,
    switch: Netns,
    scratch: Scratch,
    token: String,
    /// With TLS on the client URLs: the PEM files.
    tls: Option<TlsFiles>,
}

/// The PEM files of a TLS cluster ([`EtcdCluster::start_tls`]): the CA
/// that signed every certificate, and a client certificate and key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: std::path::PathBuf,
    /// A client certificate (`extendedKeyUsage=clientAuth`).
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
}

impl EtcdCluster {
    /// Starts three members and waits until each answers `/health` with
    /// `true` (the cluster has a leader). Fails the test with the member's
    /// log when one does not.
    pub fn start(tag: &str) -> EtcdCluster {
        crate::require_root("the etcd cluster");
        let switch = Netns::new(&format!("{tag}-sw"));
        switch.exec("ip", &["link", "add", "br0", "type", "bridge"]);
        switch.exec("ip", &["link", "set", "br0", "up"]);
        let on_switch = |ns: &Netns, i: usize| {
            let host = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host);
            attach(&switch, ns, address);
            address
        };
        let (members, scratch, token) = Self::members(tag, on_switch);
        Self::run(members, switch, scratch, token, false)
    }

    /// [`EtcdCluster::start`] with TLS on the client URLs (`https://`) and
    /// client certificates required (`--client-cert-auth`), from a CA
    /// made here with `openssl`.
    pub fn start_tls(tag: &str) -> EtcdCluster {
        crate::require_root("the etcd cluster");
        let switch = Netns::new(&format!("{tag}-sw"));
        switch.exec("ip", &["link", "add", "br0", "type", "bridge"]);
        switch.exec("ip", &["link", "set", "br0", "up"]);
        let on_switch = |ns: &Netns, i: usize| {
            let host = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host);
            attach(&switch, ns, address);
            address
        };
        let (members, scratch, token) = Self::members(tag, on_switch);
        Self::run(members, switch, scratch, token, true)
    }

    /// The TLS files of a [`EtcdCluster::start_tls`] cluster.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// [`EtcdCluster::start`] with the members plugged in by `attach`
    /// (given each member's namespace and index 0..3, it wires the
    /// namespace and returns the member's address): to put the members on
    /// a subnet of a namespace cluster, where its nodes reach them.
    pub fn start_on(tag: &str, attach: impl FnMut(&Netns, usize) -> Ipv4Addr) -> EtcdCluster {
        crate::require_root("the etcd cluster");
        let switch = Netns::new(&format!("{tag}-sw"));
        let (members, scratch, token) = Self::members(tag, attach);
        Self::run(members, switch, scratch, token, false)
    }

    fn members(
        tag: &str,
        mut attach: impl FnMut(&Netns, usize) -> Ipv4Addr,
    ) -> (Vec<Member>, Scratch, String) {
        require_etcd();
        let scratch = Scratch::new(&format!("etcd-{tag}"));
        let token = format!("pr-{tag}-{}", std::process::id());
        let mut members = Vec::new();
        for i in 0..3 {
            let ns = Netns::new(&format!("{tag}-e{i}"));
            let address = attach(&ns, i);
            members.push(Member {
                name: format!("m{i}"),
                ns,
                address,
                process: None,
                lives: 0,
            });
        }
        (members, scratch, token)
    }

    fn run(
        members: Vec<Member>,
        switch: Netns,
        scratch: Scratch,
        token: String,
        tls: bool,
    ) -> EtcdCluster {
        let tls = tls.then(|| make_certificates(&scratch, &members));
        let mut cluster = EtcdCluster {
            members,
            clients: Vec::new(),
            switch,
            scratch,
            token,
            tls,
        };
        for i in 0..3 {
            cluster.spawn(i, "new");
        }
        for i in 0..3 {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// The members' client URLs (`http://10.199.0.N:2379`), for
    /// `etcd.endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://{}:2379", self.scheme(), m.address))
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// A new namespace on the cluster's switch (address
    /// `10.199.0.(100 + N)/24`) from which the members are reachable;
    /// deleted with the cluster.
    pub fn client_netns(&mut self) -> &Netns {
        let n = u8::try_from(self.clients.len()).unwrap_or(u8::MAX);
        let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 100u8.saturating_add(n));
        let ns = Netns::new("etcdc");
        attach(&self.switch, &ns, address);
        self.clients.push(ns);
        self.clients.last().unwrap_or_else(|| unreachable!())
    }

    /// Kills member `i` (0, 1 or 2) with SIGKILL; its data stays.
    pub fn kill(&mut self, i: usize) {
        self.members[i].process = None;
    }

    /// Starts member `i` again on its data directory and waits for it.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
        self.wait_healthy(i);
    }

    /// Starts member `i` again without waiting: with quorum lost, no
    /// member is healthy until enough are back.
    pub fn restart_no_wait(&mut self, i: usize) {
        self.spawn(i, "existing");
    }

    /// Waits until member `i` answers `/health` with `true`.
    pub fn wait_healthy(&self, i: usize) {
        let m = &self.members[i];
        // The plain-HTTP metrics listener answers /health with or without
        // TLS on the client URLs.
        let url = SocketAddr::V4(SocketAddrV4::new(m.address, 2381));
        let ns = m.ns.name().to_owned();
        let ok = crate::wait_for(START_TIMEOUT, || {
            health(&ns, url).filter(|h| *h).map(|_| ())
        });
        if ok.is_none() {
            let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "etcd member {} did not become healthy within {START_TIMEOUT:?}; last log lines (newest first):\n{}",
                m.name,
                tail.join("\n")
            );
        }
    }

    fn log_path(&self, i: usize) -> std::path::PathBuf {
        let m = &self.members[i];
        self.scratch.join(&format!("{}.{}.log", m.name, m.lives))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.address))
            .collect();
        let initial = initial.join(",");
        self.members[i].lives += 1;
        let log = self.log_path(i);
        let m = &self.members[i];
        let data = self.scratch.join(&format!("{}.data", m.name));
        let data = data.to_string_lossy().into_owned();
        let client = format!("{}://{}:2379", self.scheme(), m.address);
        let peer = format!("http://{}:2380", m.address);
        let metrics = format!("http://{}:2381", m.address);
        let tls_args: Vec<String> = match &self.tls {
            None => Vec::new(),
            Some(t) => vec![
                "--cert-file".into(),
                self.scratch
                    .join(&format!("{}.pem", m.name))
                    .to_string_lossy()
                    .into_owned(),
                "--key-file".into(),
                self.scratch
                    .join(&format!("{}-key.pem", m.name))
                    .to_string_lossy()
                    .into_owned(),
                "--trusted-ca-file".into(),
                t.ca.to_string_lossy().into_owned(),
                "--client-cert-auth".into(),
            ],
        };
        let base = [
            "--name",
            &m.name,
            "--data-dir",
            &data,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            state,
            // Short elections, so that a killed leader is replaced fast.
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            "--listen-metrics-urls",
            &metrics,
        ];
        let mut args: Vec<&str> = base.to_vec();
        args.extend(tls_args.iter().map(String::as_str));
        let process = Daemon::spawn(Some(&m.ns), "etcd", &args, &log);
        self.members[i].process = Some(process);
    }
}

/// A CA, a server certificate per member (its address as IP SAN) and a
/// client certificate, with `openssl`, in `scratch`.
fn make_certificates(scratch: &Scratch, members: &[Member]) -> TlsFiles {
    let path = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let ca = path("ca.pem");
    let ca_key = path("ca-key.pem");
    crate::run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=podroute-test-ca",
        ],
    );
    let sign = |name: &str, ext: &str| {
        let key = path(&format!("{name}-key.pem"));
        let csr = path(&format!("{name}.csr"));
        let cert = path(&format!("{name}.pem"));
        let extfile = scratch.write(&format!("{name}.ext"), ext);
        crate::run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        crate::run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &extfile.to_string_lossy(),
            ],
        );
        (cert, key)
    };
    for m in members {
        sign(
            &m.name,
            &format!(
                "subjectAltName=IP:{}\nextendedKeyUsage=serverAuth,clientAuth\n",
                m.address
            ),
        );
    }
    let (cert, key) = sign("client", "extendedKeyUsage=clientAuth\n");
    TlsFiles {
        ca: ca.into(),
        cert: cert.into(),
        key: key.into(),
    }
}

/// Puts `ns` on the switch's bridge with `address`/24.
fn attach(switch: &Netns, ns: &Netns, address: Ipv4Addr) {
    let (here, there) = ns.veth_pair(switch);
    ns.exec(
        "ip",
        &["addr", "add", &format!("{address}/24"), "dev", &here],
    );
    ns.exec("ip", &["link", "set", &here, "up"]);
    switch.exec("ip", &["link", "set", &there, "master", "br0"]);
    switch.exec("ip", &["link", "set", &there, "up"]);
}

/// `GET /health` on a member from inside `ns`: `Some(true)` when it
/// answers `"health":"true"`, `Some(false)` for another answer, `None`
/// when it cannot be reached.
fn health(ns: &str, member: SocketAddr) -> Option<bool> {
    use std::io::{Read, Write};
    let ns = ns.to_owned();
    crate::in_netns(&ns, move || {
        let mut s =
            std::net::TcpStream::connect_timeout(&member, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        Some(answer.contains("\"health\":\"true\""))
    })
}
