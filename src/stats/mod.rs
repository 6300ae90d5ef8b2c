//! Counters and latency histograms: the leaf every other part counts into.
//!
//! Owns only the counting primitives. Each part declares the counters it bumps next to
//! the code that bumps them (the event loop its connection counters, HTTP its routes,
//! RESP its command table), builds them from these types, and the admin room
//! ([`crate::admin`]) reads and renders them. Nothing here imports another module of
//! the crate, and nothing here knows a route, a command or an output format.
//!
//! Counters are single-writer: each event loop owns its own and only it increments them
//! (an atomic load and store, no locked instruction); readers sum over loops.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter written by one thread and read by any.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (single writer: a load and a store, no lock prefix).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in nanoseconds (a `+Inf` bucket follows).
pub const BUCKETS_NS: [u64; 21] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
];

/// A latency histogram with fixed log-spaced buckets.
#[derive(Default, Debug)]
pub struct Histogram {
    buckets: [Counter; BUCKETS_NS.len() + 1],
    sum_ns: Counter,
}

impl Histogram {
    /// Records `count` observations of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64, count: u64) {
        let i = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[i].add(count);
        self.sum_ns.add(ns.saturating_mul(count));
    }
}

/// Histograms summed (over loops).
#[derive(Clone, Debug)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub buckets: Vec<u64>,
    /// Sum of all observations in nanoseconds.
    pub sum_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: vec![0; BUCKETS_NS.len() + 1],
            sum_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Adds the observations of `h`.
    pub fn add(&mut self, h: &Histogram) {
        for (sum, b) in self.buckets.iter_mut().zip(&h.buckets) {
            *sum += b.get();
        }
        self.sum_ns += h.sum_ns.get();
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound (in microseconds) of the bucket holding quantile `q`; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = BUCKETS_NS
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_NS[BUCKETS_NS.len() - 1] * 2);
                return bound as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// Counters in rows and columns, labelled by their owner: the labels are the owner's own
/// tables (HTTP's routes and statuses, RESP's commands), so no list of labels is kept
/// anywhere else. A one-dimensional table has one column labelled `""`.
#[derive(Debug)]
pub struct Table {
    rows: Box<[&'static str]>,
    columns: Box<[&'static str]>,
    cells: Box<[Counter]>,
}

impl Table {
    /// A table of `rows` x `columns` counters at zero.
    pub fn new(rows: Vec<&'static str>, columns: Vec<&'static str>) -> Table {
        let columns = if columns.is_empty() {
            vec![""]
        } else {
            columns
        };
        Table {
            cells: (0..rows.len() * columns.len())
                .map(|_| Counter::default())
                .collect(),
            rows: rows.into(),
            columns: columns.into(),
        }
    }

    /// Counts one in row `row`, column `column` (indices into the owner's tables).
    #[inline]
    pub fn incr(&self, row: usize, column: usize) {
        if let Some(c) = self.cells.get(row * self.columns.len() + column) {
            c.incr();
        }
    }

    /// The column labels.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// The count at `row`, `column`.
    pub fn get(&self, row: usize, column: usize) -> u64 {
        self.cells
            .get(row * self.columns.len() + column)
            .map_or(0, Counter::get)
    }
}

/// A [`Table`] summed over loops.
#[derive(Clone, Debug, Default)]
pub struct TableSnapshot {
    /// Row labels.
    pub rows: Vec<&'static str>,
    /// Column labels.
    pub columns: Vec<&'static str>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<u64>>,
}

impl TableSnapshot {
    /// Sums `tables` (all built from the same labels).
    pub fn sum<'a>(tables: impl IntoIterator<Item = &'a Table>) -> TableSnapshot {
        let mut s = TableSnapshot::default();
        for t in tables {
            if s.counts.is_empty() {
                s.rows = t.rows.to_vec();
                s.columns = t.columns.to_vec();
                s.counts = vec![vec![0; t.columns.len()]; t.rows.len()];
            }
            for (r, row) in s.counts.iter_mut().enumerate() {
                for (c, n) in row.iter_mut().enumerate() {
                    *n += t.get(r, c);
                }
            }
        }
        s
    }

    /// The count of a row by label, summed over columns.
    pub fn row_total(&self, label: &str) -> u64 {
        self.rows
            .iter()
            .position(|r| *r == label)
            .map_or(0, |r| self.counts[r].iter().sum())
    }
}

/// The counters one event loop owns, for every protocol it serves. The transport bumps
/// the connection counters; the applications bump their own tables and histograms.
#[derive(Debug)]
pub struct LoopStats {
    /// Connections accepted (registered with the poller).
    pub accepted: Counter,
    /// Connections refused at the connection cap.
    pub refused: Counter,
    /// Connections closed (any reason), each accepted one exactly once.
    pub closed: Counter,
    /// Connections closed by the idle timeout.
    pub idle_closed: Counter,
    /// Lookups refused by the rate limit.
    pub throttled: Counter,
    /// Lookups refused by the per-client limit (PROXY_CLIENT_RATE_LIMIT_RPS).
    pub client_throttled: Counter,
    /// Credentials presented that match no principal (wrong token or user).
    pub auth_failures: Counter,
    /// Requests refused for want of authentication or permission (401, 403, NOAUTH,
    /// NOPERM).
    pub auth_denied: Counter,
    /// Connections closed after too many failed logins (AUTH, HELLO AUTH).
    pub auth_closed: Counter,
    /// Connections closed because a request was not complete within the request timeout.
    pub request_timeouts: Counter,
    /// Replies answered unavailable by the loop because the backend had not answered
    /// within its timeout.
    pub miss_timeouts: Counter,
    /// Keys answered from an expired entry because their fetch failed
    /// (PROXY_STALE_IF_ERROR_MS).
    pub stale_answers: Counter,
    /// TLS handshakes completed (client ports with PROXY_TLS_CERT_FILE).
    pub tls_handshakes: Counter,
    /// TLS connections closed before their handshake completed (garbage, plaintext, a
    /// refused certificate, a client gone or slower than PROXY_REQUEST_TIMEOUT_MS).
    pub tls_handshake_failures: Counter,
    /// Time from reading a request to rendering its reply, cache hits.
    pub hit_latency: Histogram,
    /// Time from reading a request to rendering its reply, misses (Redis round trip).
    pub miss_latency: Histogram,
    /// HTTP responses by route and status (labels from the HTTP route table).
    pub http: Table,
    /// RESP commands by command (labels from the RESP command table).
    pub resp: Table,
}

impl LoopStats {
    /// Counters at zero; the tables take their labels from their owners.
    pub fn new(http: Table, resp: Table) -> LoopStats {
        LoopStats {
            accepted: Counter::default(),
            refused: Counter::default(),
            closed: Counter::default(),
            idle_closed: Counter::default(),
            throttled: Counter::default(),
            client_throttled: Counter::default(),
            auth_failures: Counter::default(),
            auth_denied: Counter::default(),
            auth_closed: Counter::default(),
            request_timeouts: Counter::default(),
            miss_timeouts: Counter::default(),
            stale_answers: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_failures: Counter::default(),
            hit_latency: Histogram::default(),
            miss_latency: Histogram::default(),
            http,
            resp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counts_by_owner_labels_and_sums() {
        let table = || Table::new(vec!["a", "b"], vec!["1", "2", "3"]);
        let (x, y) = (table(), table());
        x.incr(1, 2);
        y.incr(1, 2);
        y.incr(0, 0);
        x.incr(5, 5); // out of range: ignored, never a panic
        let s = TableSnapshot::sum([&x, &y]);
        assert_eq!(s.counts, vec![vec![1, 0, 0], vec![0, 0, 2]]);
        assert_eq!(s.row_total("b"), 2);
        assert_eq!(s.row_total("zz"), 0);
    }

    #[test]
    fn one_dimensional_table_has_one_column() {
        let t = Table::new(vec!["get"], Vec::new());
        t.incr(0, 0);
        assert_eq!(t.get(0, 0), 1);
        assert_eq!(t.columns(), &[""]);
    }

    #[test]
    fn quantiles_from_buckets() {
        let h = Histogram::default();
        h.record(900, 99);
        h.record(3_000_000, 1);
        let mut s = HistogramSnapshot::default();
        s.add(&h);
        assert_eq!(s.count(), 100);
        assert_eq!(s.quantile_us(0.5), 1.0);
        assert_eq!(s.quantile_us(1.0), 5000.0);
    }
}
