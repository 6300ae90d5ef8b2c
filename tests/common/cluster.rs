//! A real Redis Cluster on loopback for the system tests: `redis-server` processes with
//! `--cluster-enabled yes` on free ports (bus ports chosen explicitly, also free), joined by
//! `redis-cli --cluster create`, and helpers to move slots (reshard, a hand-made ASK
//! migration), fail masters over (manual failover, SIGSTOP, kill) and reach the right node
//! directly. Every process is killed when the [`Cluster`] drops, a stopped one included.
//!
//! Nodes are named by their index in start order; which of them are masters is read from the
//! cluster itself ([`Cluster::masters`]), since failovers change it. Every change waits until
//! each running node reports `cluster_state:ok` and the same slot map and roles
//! ([`Cluster::wait_stable`]), polled within a bound, never slept for.

use super::{ChildGuard, Proxy, StderrLog, TempDir, free_port, require_tool};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// `cluster-node-timeout`: how long a silent node takes to be suspected. Short so that a
/// stopped master is replaced in a few seconds, long enough that a node starved of CPU by a
/// parallel build is not failed over by mistake.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// Bound on reaching a stable cluster after a start or a change.
pub const STABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The hash slot of `key` (CRC16 of the key or its hash tag, modulo 16384): the proxy's
/// own function, which `tests/cluster.rs` checks against `CLUSTER KEYSLOT`.
pub fn slot_of(key: impl AsRef<[u8]>) -> u16 {
    proxyredis::backend::slot_of(key.as_ref())
}

/// A key `{prefix}N` (first N that fits) whose slot is `slot`.
pub fn key_in_slot(prefix: &str, slot: u16) -> String {
    keys_in_slot(prefix, slot, 1).remove(0)
}

/// `count` distinct keys `prefixN` in `slot` (no hash tag, so they look like ordinary keys).
pub fn keys_in_slot(prefix: &str, slot: u16, count: usize) -> Vec<String> {
    (0u64..)
        .map(|n| format!("{prefix}{n}"))
        .filter(|k| slot_of(k) == slot)
        .take(count)
        .collect()
}

/// One RESP2 reply, errors kept whole (`ASK 3999 127.0.0.1:7001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk reply; panics on anything else.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a status or bulk reply, got {other:?}"),
        }
    }

    /// The text of a status or bulk reply, if it is one.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The error line (without `-`), if this is an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// A plain RESP2 connection to one node: no redirection followed, every reply returned as is.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to 127.0.0.1:`port` with `timeout` for the connect and for each read.
    pub fn open(port: u16, timeout: Duration) -> std::io::Result<Conn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let bad = |what: &str| std::io::Error::other(format!("bad RESP reply: {what}"));
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad(line))?;
        let number = || rest.parse::<i64>().map_err(|_| bad(line));
        Ok(match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(number()?),
            "$" if number()? < 0 => Reply::Bulk(None),
            "$" => {
                let mut body = vec![0; number()? as usize + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(body.len() - 2);
                Reply::Bulk(Some(body))
            }
            "*" if number()? < 0 => Reply::Array(None),
            "*" => {
                let n = number()?;
                let items = (0..n).map(|_| self.read_reply());
                Reply::Array(Some(items.collect::<std::io::Result<_>>()?))
            }
            _ => return Err(bad(line)),
        })
    }
}

const RUNNING: u8 = 0;
const PAUSED: u8 = 1;
const KILLED: u8 = 2;

/// One redis-server of the cluster.
struct Node {
    port: u16,
    bus_port: u16,
    id: String,
    state: AtomicU8,
    /// The slots it owned when it was paused or killed, for [`Cluster::wait_promotion`].
    slots_when_lost: Mutex<Vec<u16>>,
    child: Mutex<ChildGuard>,
    dir: TempDir,
}

impl Node {
    fn spawn() -> Node {
        let bin = require_tool("redis-server", "redis-server");
        let (port, bus_port) = (free_port(), free_port());
        let dir = TempDir::new(&format!("cluster-{port}"));
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            // Replicas fail over however old their data (a stopped master stops feeding
            // them) and never wander off to another master.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-replica-migration", "no"])
            // A replica's first sync starts at once (the default waits 5 s for others).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&dir.0)
            .arg("--logfile")
            .arg(dir.0.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        Node {
            port,
            bus_port,
            id: String::new(),
            state: AtomicU8::new(RUNNING),
            slots_when_lost: Mutex::new(Vec::new()),
            child: Mutex::new(ChildGuard(Some(child))),
            dir,
        }
    }

    fn running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    fn child(&self) -> std::sync::MutexGuard<'_, ChildGuard> {
        // A panic elsewhere while it was held leaves the guard as it was: still usable.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a signal by name (STOP, CONT); false if `kill` failed.
    fn signal(&self, name: &str) -> bool {
        let pid = self.child().pid();
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The exit status, if the process has ended.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child().0.as_mut()?.try_wait().ok()?
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("redis.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// One node as another node sees it (a line of `CLUSTER NODES`), by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub node: usize,
    pub master: bool,
    /// The master of a replica.
    pub replica_of: Option<usize>,
    /// Flagged `fail` or `fail?`.
    pub failing: bool,
}

/// The cluster as one node sees it: its members and the owner of every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub members: Vec<Seen>,
    pub owners: Vec<Option<usize>>,
}

/// A running Redis Cluster; dropping it kills every node.
pub struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `masters` (at least 3, as `redis-cli --cluster create` requires) masters with
    /// `replicas_per_master` replicas each, and waits until every node agrees on a full slot
    /// map. About 2 s.
    pub fn start(masters: usize, replicas_per_master: usize) -> Cluster {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs at least 3 masters"
        );
        let cli = require_tool("redis-cli", "redis-tools");
        let count = masters * (1 + replicas_per_master);
        let mut cluster = Cluster {
            nodes: (0..count).map(|_| Node::spawn()).collect(),
        };
        for i in 0..count {
            let id = cluster.poll(&format!("node {i} to answer CLUSTER MYID"), || {
                if let Some(status) = cluster.nodes[i].exited() {
                    panic!("redis-server {i} exited ({status})\n{}", cluster.logs());
                }
                cluster.call_node(i, &["CLUSTER", "MYID"]).ok()?.as_text()
            });
            cluster.nodes[i].id = id;
        }
        let out = Command::new(cli)
            .args(["--cluster", "create"])
            .args(cluster.addrs())
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("running redis-cli --cluster create");
        if !out.status.success() {
            panic!(
                "redis-cli --cluster create failed ({}):\n{}{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                cluster.logs()
            );
        }
        cluster.wait_stable();
        cluster
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Port of node `i` (on 127.0.0.1).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Cluster bus port of node `i`.
    pub fn bus_port(&self, i: usize) -> u16 {
        self.nodes[i].bus_port
    }

    /// `127.0.0.1:port` of node `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    /// Every node's address, in index order.
    pub fn addrs(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.addr(i)).collect()
    }

    /// The seed list for `REDIS_CLUSTER_NODES`: every node, comma-separated.
    pub fn seeds(&self) -> String {
        self.addrs().join(",")
    }

    /// The node id (40 hex digits) of node `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// The index of the node with this id or port, if it is one of ours.
    pub fn index_of(&self, id_or_port: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.id == id_or_port || n.port.to_string() == id_or_port)
    }

    /// A fresh connection to node `i` (5 s timeouts).
    pub fn conn(&self, i: usize) -> Conn {
        Conn::open(self.port(i), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connecting to node {i} ({}): {e}", self.addr(i)))
    }

    /// One command on node `i`, on a fresh connection with a 2 s timeout.
    pub fn call_node<A: AsRef<[u8]>>(&self, i: usize, args: &[A]) -> std::io::Result<Reply> {
        Conn::open(self.port(i), Duration::from_secs(2))?.call(args)
    }

    /// One command on node `i` that must not fail at the socket.
    pub fn on(&self, i: usize, args: &[&str]) -> Reply {
        self.call_node(i, args)
            .unwrap_or_else(|e| panic!("{args:?} on node {i} ({}): {e}", self.addr(i)))
    }

    /// One command routed by the slot of `key` to its master, following MOVED and ASK (a
    /// few hops) as a cluster client does.
    pub fn call_key<A: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, args: &[A]) -> Reply {
        let mut target = self.master_for_slot(slot_of(key.as_ref()));
        let mut asking = false;
        for _ in 0..5 {
            let mut conn = self.conn(target);
            if asking {
                conn.call(&["ASKING"]).expect("ASKING");
            }
            let reply = conn.call(args).expect("a command routed by key");
            let Some(err) = reply.error() else {
                return reply;
            };
            let redirect = |to: &str| {
                let port = to.rsplit(':').next().unwrap_or_default();
                self.index_of(port)
                    .unwrap_or_else(|| panic!("redirected to an unknown node: {err}"))
            };
            match err.split(' ').collect::<Vec<_>>()[..] {
                ["MOVED", _, to] => (target, asking) = (redirect(to), false),
                ["ASK", _, to] => (target, asking) = (redirect(to), true),
                _ => return reply,
            }
        }
        panic!("too many redirections for a command on {:?}", key.as_ref());
    }

    /// SET `key` `value` on the master that owns its slot.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        let reply = self.call_key(key, &[b"SET".as_slice(), key, value]);
        assert_eq!(reply, Reply::Status("OK".into()), "SET {key:?}");
    }

    /// GET `key` from the master that owns its slot.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let key = key.as_ref();
        match self.call_key(key, &[b"GET".as_slice(), key]) {
            Reply::Bulk(v) => v,
            other => panic!("GET {key:?}: {other:?}"),
        }
    }

    /// DEL `key` on the master that owns its slot.
    pub fn del(&self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        let reply = self.call_key(key, &[b"DEL".as_slice(), key]);
        assert!(matches!(reply, Reply::Int(_)), "DEL {key:?}: {reply:?}");
    }

    /// The cluster as node `i` sees it (`CLUSTER NODES`); None if it does not answer.
    pub fn view_from(&self, i: usize) -> Option<View> {
        let text = match self.call_node(i, &["CLUSTER", "NODES"]).ok()? {
            Reply::Bulk(Some(b)) => String::from_utf8(b).ok()?,
            _ => return None,
        };
        let mut view = View {
            members: Vec::new(),
            owners: vec![None; SLOTS],
        };
        let mut master_ids = Vec::new();
        for line in text.lines() {
            // <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
            let f: Vec<&str> = line.split(' ').collect();
            let Some(node) = f.first().and_then(|id| self.index_of(id)) else {
                continue; // a handshake entry with a temporary id
            };
            let flags: Vec<&str> = f.get(2)?.split(',').collect();
            view.members.push(Seen {
                node,
                master: flags.contains(&"master"),
                replica_of: None,
                failing: flags.iter().any(|&fl| fl == "fail" || fl == "fail?"),
            });
            master_ids.push(*f.get(3)?);
            for range in f.iter().skip(8).filter(|s| !s.starts_with('[')) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                for slot in a.parse::<usize>().ok()?..=b.parse::<usize>().ok()? {
                    view.owners[slot] = Some(node);
                }
            }
        }
        for (seen, master_id) in view.members.iter_mut().zip(master_ids) {
            seen.replica_of = self.index_of(master_id);
        }
        view.members.sort_by_key(|s| s.node);
        Some(view)
    }

    /// The view of the first running node that answers.
    pub fn view(&self) -> View {
        self.poll("a running node to answer CLUSTER NODES", || {
            (0..self.len())
                .filter(|&i| self.nodes[i].running())
                .find_map(|i| self.view_from(i))
        })
    }

    /// Masters (by index) that own slots in the current view.
    pub fn masters(&self) -> Vec<usize> {
        let view = self.view();
        let live = |s: &&Seen| s.master && view.owners.contains(&Some(s.node));
        view.members.iter().filter(live).map(|s| s.node).collect()
    }

    /// Every replica in the current view.
    pub fn replicas(&self) -> Vec<usize> {
        let view = self.view();
        view.members
            .iter()
            .filter(|s| !s.master)
            .map(|s| s.node)
            .collect()
    }

    /// Replicas of master `m` in the current view.
    pub fn replicas_of(&self, m: usize) -> Vec<usize> {
        let view = self.view();
        let of_m = |s: &&Seen| !s.master && s.replica_of == Some(m);
        view.members.iter().filter(of_m).map(|s| s.node).collect()
    }

    /// Whether node `i` is a master in the current view.
    pub fn is_master(&self, i: usize) -> bool {
        self.masters().contains(&i)
    }

    /// The node owning `slot` in the current view.
    pub fn master_for_slot(&self, slot: u16) -> usize {
        self.view().owners[slot as usize]
            .unwrap_or_else(|| panic!("slot {slot} has no owner\n{}", self.logs()))
    }

    /// Slots owned by node `i` in the current view.
    pub fn slots_of(&self, i: usize) -> Vec<u16> {
        let owners = self.view().owners;
        (0..SLOTS as u16)
            .filter(|&s| owners[s as usize] == Some(i))
            .collect()
    }

    /// A key `prefixN` whose slot node `i` owns.
    pub fn key_on(&self, i: usize, prefix: &str) -> String {
        self.keys_on(i, prefix, 1).remove(0)
    }

    /// `count` distinct keys `prefixN` whose slots node `i` owns.
    pub fn keys_on(&self, i: usize, prefix: &str, count: usize) -> Vec<String> {
        let owners = self.view().owners;
        assert!(owners.contains(&Some(i)), "node {i} owns no slot");
        (0u64..)
            .map(|n| format!("{prefix}{n}"))
            .filter(|k| owners[slot_of(k) as usize] == Some(i))
            .take(count)
            .collect()
    }

    /// Waits until every running node says `cluster_state:ok`, sees every running node as
    /// healthy, and all of them report the same roles and the same owner for every slot.
    pub fn wait_stable(&self) {
        self.poll("every running node to agree on a healthy cluster", || {
            self.stable_view()
        });
    }

    /// The agreed view when the cluster is stable, else None.
    fn stable_view(&self) -> Option<View> {
        let running: Vec<usize> = (0..self.len())
            .filter(|&i| self.nodes[i].running())
            .collect();
        let mut agreed: Option<View> = None;
        for &i in &running {
            let info = self.call_node(i, &["CLUSTER", "INFO"]).ok()?;
            if !matches!(&info, Reply::Bulk(Some(b)) if b.starts_with(b"cluster_state:ok")) {
                return None;
            }
            let mut view = self.view_from(i)?;
            // Only running nodes count: what others think of a stopped one is gossip in flux.
            view.members.retain(|s| self.nodes[s.node].running());
            let all_known = view.members.len() == running.len();
            if !all_known || view.members.iter().any(|s| s.failing) {
                return None;
            }
            match &agreed {
                Some(first) if *first != view => return None,
                Some(_) => {}
                None => agreed = Some(view),
            }
        }
        agreed
    }

    /// Moves `count` slots from master `from` to master `to` with their keys
    /// (`redis-cli --cluster reshard`); returns the slots moved, once every node agrees.
    pub fn reshard(&self, from: usize, to: usize, count: usize) -> Vec<u16> {
        self.wait_stable();
        let before = self.slots_of(from);
        let out = Command::new(require_tool("redis-cli", "redis-tools"))
            .args(["--cluster", "reshard", &self.addr(from)])
            .args(["--cluster-from", self.id(from), "--cluster-to", self.id(to)])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("running redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "redis-cli --cluster reshard failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_stable();
        let after = self.slots_of(to);
        before.into_iter().filter(|s| after.contains(s)).collect()
    }

    /// Starts moving `slot` from its master to master `to` by hand: the target is marked
    /// IMPORTING, the source MIGRATING. Until [`Migration::finish`], the source answers
    /// `-ASK` for keys of the slot it no longer has, and the target answers `-MOVED` unless
    /// the command follows `ASKING`.
    pub fn begin_migration(&self, slot: u16, to: usize) -> Migration<'_> {
        self.wait_stable();
        let from = self.master_for_slot(slot);
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        let s = slot.to_string();
        let ok = Reply::Status("OK".into());
        let importing = ["CLUSTER", "SETSLOT", &s, "IMPORTING", self.id(from)];
        assert_eq!(self.on(to, &importing), ok, "{importing:?}");
        let migrating = ["CLUSTER", "SETSLOT", &s, "MIGRATING", self.id(to)];
        assert_eq!(self.on(from, &migrating), ok, "{migrating:?}");
        Migration {
            cluster: self,
            slot,
            from,
            to,
        }
    }

    /// Asks replica `r` for a manual failover (`CLUSTER FAILOVER`) and waits until every
    /// running node sees it as master of its old master's slots (asks again if a request
    /// lapses, as one does while the cluster is still settling).
    pub fn failover(&self, r: usize) {
        self.wait_stable();
        assert!(!self.is_master(r), "node {r} is not a replica");
        let deadline = Instant::now() + STABLE_TIMEOUT;
        while Instant::now() < deadline {
            let reply = self.on(r, &["CLUSTER", "FAILOVER"]);
            assert_eq!(reply, Reply::Status("OK".into()), "CLUSTER FAILOVER on {r}");
            // A manual failover either completes within a few node timeouts or is dropped.
            let attempt = Instant::now() + Duration::from_millis(NODE_TIMEOUT_MS * 5);
            while Instant::now() < attempt {
                if let Some(view) = self.stable_view()
                    && view.owners.contains(&Some(r))
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("node {r} was not promoted\n{}", self.logs());
    }

    /// Waits until every replica of master `m` has applied all that `m` has written.
    pub fn wait_for_replication(&self, m: usize) {
        let offset = |i: usize, field: &str| -> Option<u64> {
            let info = self
                .call_node(i, &["INFO", "replication"])
                .ok()?
                .as_text()?;
            let line = info.lines().find(|l| l.starts_with(field))?;
            line.split_once(':')?.1.trim().parse().ok()
        };
        let replicas = self.replicas_of(m);
        self.poll(&format!("the replicas of node {m} to catch up"), || {
            let written = offset(m, "master_repl_offset:")?;
            let caught_up = |&r: &usize| offset(r, "slave_repl_offset:") >= Some(written);
            replicas.iter().all(caught_up).then_some(())
        });
    }

    /// Freezes node `i` with SIGSTOP: its sockets stay open, it answers nothing.
    pub fn pause(&self, i: usize) {
        self.lose(i, PAUSED);
        assert!(self.nodes[i].signal("STOP"), "kill -STOP node {i}");
    }

    /// Resumes a paused node with SIGCONT.
    pub fn resume(&self, i: usize) {
        assert_eq!(self.nodes[i].state.load(Ordering::Acquire), PAUSED);
        assert!(self.nodes[i].signal("CONT"), "kill -CONT node {i}");
        self.nodes[i].state.store(RUNNING, Ordering::Release);
    }

    /// Kills node `i` (SIGKILL); it stays dead.
    pub fn kill(&self, i: usize) {
        self.lose(i, KILLED);
        self.nodes[i].child().kill();
    }

    /// Records what node `i` owned before it goes away.
    fn lose(&self, i: usize, state: u8) {
        let slots = self.slots_of(i);
        if !slots.is_empty() {
            let replicas = self.replicas_of(i);
            assert!(
                !replicas.is_empty(),
                "master {i} has no replica to take over"
            );
        }
        *self.nodes[i].slots_when_lost.lock().unwrap() = slots;
        let was = self.nodes[i].state.swap(state, Ordering::AcqRel);
        assert_eq!(was, RUNNING, "node {i} is not running");
    }

    /// After master `old` was paused or killed: waits until a replica has taken its slots
    /// and the running nodes agree again; returns the new master.
    pub fn wait_promotion(&self, old: usize) -> usize {
        let slots = self.nodes[old].slots_when_lost.lock().unwrap().clone();
        let slot = *slots
            .first()
            .unwrap_or_else(|| panic!("node {old} owned no slot when it was lost"));
        self.poll(
            &format!("a replica to take over node {old}'s slots"),
            || {
                let view = self.stable_view()?;
                let new = view.owners[slot as usize]?;
                (new != old && slots.iter().all(|&s| view.owners[s as usize] == Some(new)))
                    .then_some(new)
            },
        )
    }

    /// Starts a proxy (test defaults, [`Proxy::start`]) with `REDIS_CLUSTER_NODES` set to
    /// this cluster's nodes, plus `overrides`.
    pub fn start_proxy(&self, overrides: &[(&str, &str)]) -> Proxy {
        let seeds = self.seeds();
        let mut env = vec![("REDIS_CLUSTER_NODES", seeds.as_str())];
        env.extend_from_slice(overrides);
        Proxy::start(self.port(0), &env)
    }

    /// Like [`Cluster::start_proxy`], with the proxy's stderr collected.
    pub fn start_proxy_logged(&self, overrides: &[(&str, &str)]) -> (Proxy, StderrLog) {
        let seeds = self.seeds();
        let mut env = vec![("REDIS_CLUSTER_NODES", seeds.as_str())];
        env.extend_from_slice(overrides);
        Proxy::start_logged(self.port(0), &env)
    }

    /// Every node's view, address and last log lines, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in (0..self.len()).filter(|&i| self.nodes[i].running()) {
            let view = self.view_from(i);
            out.push_str(&format!("node {i} sees: {}\n", describe(view.as_ref())));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let state =
                ["running", "paused", "killed"][node.state.load(Ordering::Acquire) as usize];
            out.push_str(&format!(
                "--- node {i} {} bus {} ({state}) id {}\n{}\n",
                self.addr(i),
                node.bus_port,
                node.id,
                node.log_tail(30)
            ));
        }
        out
    }

    /// Polls `f` within [`STABLE_TIMEOUT`]; panics with the nodes' logs on timeout.
    fn poll<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + STABLE_TIMEOUT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {STABLE_TIMEOUT:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if node.state.load(Ordering::Acquire) == PAUSED {
                node.signal("CONT");
            }
            node.child().kill();
        }
    }
}

/// One line per view: each member's role and its slot ranges.
fn describe(view: Option<&View>) -> String {
    let Some(view) = view else {
        return "(no answer)".into();
    };
    let mut parts = Vec::new();
    for seen in &view.members {
        let mut ranges: Vec<String> = Vec::new();
        let mut slot = 0;
        while slot < SLOTS {
            if view.owners[slot] != Some(seen.node) {
                slot += 1;
                continue;
            }
            let start = slot;
            while slot < SLOTS && view.owners[slot] == Some(seen.node) {
                slot += 1;
            }
            ranges.push(format!("{start}-{}", slot - 1));
        }
        let role = match seen.replica_of {
            _ if seen.master => "master".to_string(),
            Some(m) => format!("replica of {m}"),
            None => "replica".to_string(),
        };
        let failing = if seen.failing { " FAILING" } else { "" };
        parts.push(format!(
            "{} {role}{failing} [{}]",
            seen.node,
            ranges.join(" ")
        ));
    }
    parts.join("; ")
}

/// A slot being moved by hand between two masters ([`Cluster::begin_migration`]).
pub struct Migration<'a> {
    cluster: &'a Cluster,
    pub slot: u16,
    pub from: usize,
    pub to: usize,
}

impl Migration<'_> {
    /// Moves `keys` (all in the slot) from the source to the target (`MIGRATE ... KEYS`).
    pub fn move_keys(&self, keys: &[&str]) {
        let c = self.cluster;
        for k in keys {
            assert_eq!(slot_of(k), self.slot, "{k} is not in slot {}", self.slot);
        }
        let port = c.port(self.to).to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend_from_slice(keys);
        let reply = c.conn(self.from).call(&args).expect("MIGRATE");
        assert!(
            matches!(&reply, Reply::Status(s) if s == "OK" || s == "NOKEY"),
            "MIGRATE {keys:?}: {reply:?}"
        );
    }

    /// Moves the slot's remaining keys, then assigns the slot to the target on every master
    /// (target first, then source, as Redis documents), and waits until all nodes agree.
    pub fn finish(self) {
        let c = self.cluster;
        let s = self.slot.to_string();
        loop {
            let keys = match c.on(self.from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]) {
                Reply::Array(Some(keys)) => keys.iter().map(Reply::text).collect::<Vec<_>>(),
                other => panic!("CLUSTER GETKEYSINSLOT {s}: {other:?}"),
            };
            if keys.is_empty() {
                break;
            }
            self.move_keys(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let masters = c.masters();
        let rest = masters.iter().filter(|&&m| m != self.from && m != self.to);
        for m in [self.to, self.from].into_iter().chain(rest.copied()) {
            let reply = c.on(m, &["CLUSTER", "SETSLOT", &s, "NODE", c.id(self.to)]);
            assert_eq!(reply, Reply::Status("OK".into()), "SETSLOT {s} NODE on {m}");
        }
        c.wait_stable();
    }
}
