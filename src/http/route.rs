//! The table of routes: which paths lead where, and each route's label in `/stats` and
//! `/metrics` (its handlers are in `routes`, the lookups' in `lookup`).

/// The routes the proxy serves; the discriminant is the route's row in the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/lookup`, `/v1/lookup`: JSON answer.
    Lookup = 0,
    /// `/v1/raw`: the value's bytes.
    Raw = 1,
    /// `/healthz`: the process runs.
    Healthz = 2,
    /// `/readyz`: Redis answers.
    Readyz = 3,
    /// `/stats`: JSON counters.
    Stats = 4,
    /// `/metrics`: Prometheus text.
    Metrics = 5,
    /// Anything else.
    Unknown = 6,
}

/// One row of the route table.
pub struct RouteEntry {
    /// The route (its position in [`ROUTES`]).
    pub route: Route,
    /// Its label in `/stats` and `/metrics`.
    pub label: &'static str,
    /// The paths that lead to it.
    pub paths: &'static [&'static str],
}

/// Every route, in [`Route`] order.
pub static ROUTES: [RouteEntry; 7] = [
    RouteEntry {
        route: Route::Lookup,
        label: "lookup",
        paths: &["/lookup", "/v1/lookup"],
    },
    RouteEntry {
        route: Route::Raw,
        label: "raw",
        paths: &["/v1/raw"],
    },
    RouteEntry {
        route: Route::Healthz,
        label: "healthz",
        paths: &["/healthz"],
    },
    RouteEntry {
        route: Route::Readyz,
        label: "readyz",
        paths: &["/readyz"],
    },
    RouteEntry {
        route: Route::Stats,
        label: "stats",
        paths: &["/stats"],
    },
    RouteEntry {
        route: Route::Metrics,
        label: "metrics",
        paths: &["/metrics"],
    },
    RouteEntry {
        route: Route::Unknown,
        label: "other",
        paths: &[],
    },
];

impl Route {
    /// The route for a path.
    #[inline]
    pub fn of(path: &str) -> Route {
        ROUTES
            .iter()
            .find(|r| r.paths.contains(&path))
            .map_or(Route::Unknown, |r| r.route)
    }
}
