//! Client-side caching through the proxy, as Redis serves it: `CLIENT TRACKING`,
//! `CLIENT CACHING`, `CLIENT GETREDIR`, `CLIENT TRACKINGINFO` (the table and the pushes
//! are the backend's [`client_tracking`]).
//!
//! `CLIENT TRACKING ON` is allowed only while the proxy's own invalidation stream is up
//! (PROXY_INVALIDATION=on and every Redis node tracking), and, with PROXY_TRACKING_PREFIXES,
//! only in `BCAST` mode under those prefixes: the proxy can tell a client only of writes it
//! hears of itself. `NOLOOP` is accepted and the client is still told of its own writes
//! (one invalidation more than Redis sends, never one less).
//!
//! [`client_tracking`]: crate::backend::client_tracking

use std::sync::Arc;

use super::Call;
use crate::backend::TrackingState;
use crate::backend::client_tracking::{ClientTracking, Destination, Refusal};
use crate::resp::Client;
use crate::resp::write::{self, RESP3};

/// A connection's tracking mode; leaving the table when dropped (the connection closed).
pub struct Tracked {
    /// Client id (the table's key).
    id: u64,
    /// `REDIRECT id`.
    redirect: Option<u64>,
    /// `BCAST` and its prefixes.
    bcast: Option<Vec<Box<[u8]>>>,
    optin: bool,
    optout: bool,
    noloop: bool,
    /// `CLIENT CACHING yes|no` for the next command.
    caching: Option<bool>,
    /// `caching` was set by the command being served (it is for the next one).
    caching_fresh: bool,
    table: Arc<ClientTracking>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.id)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.table.untrack(self.id);
    }
}

impl Tracked {
    /// Whether the reads of the command now being served are remembered (default mode;
    /// OPTIN after `CLIENT CACHING yes`; OPTOUT unless after `CLIENT CACHING no`).
    pub fn remembers_reads(&self) -> bool {
        if self.bcast.is_some() {
            return false;
        }
        if self.optin {
            return self.caching == Some(true);
        }
        if self.optout {
            return self.caching != Some(false);
        }
        true
    }

    /// A command was served (not deferred): a `CLIENT CACHING` answer before it is used
    /// up.
    pub fn served(&mut self) {
        if !std::mem::take(&mut self.caching_fresh) {
            self.caching = None;
        }
    }

    /// Remembers `keys` as read by this client.
    pub fn read<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        self.table.read(self.id, keys);
    }
}

/// The options of `CLIENT TRACKING ON|OFF ...`.
struct Options {
    on: bool,
    redirect: Option<u64>,
    bcast: bool,
    prefixes: Vec<Box<[u8]>>,
    optin: bool,
    optout: bool,
    noloop: bool,
}

fn parse(call: &Call<'_>) -> Result<Options, String> {
    let on = call.arg(2);
    let on = if on.eq_ignore_ascii_case(b"on") {
        true
    } else if on.eq_ignore_ascii_case(b"off") {
        false
    } else {
        return Err("ERR syntax error".into());
    };
    let mut o = Options {
        on,
        redirect: None,
        bcast: false,
        prefixes: Vec::new(),
        optin: false,
        optout: false,
        noloop: false,
    };
    let mut j = 3;
    while j < call.argc() {
        let word = call.arg(j);
        let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
        let more = j + 1 < call.argc();
        if is("REDIRECT") && more {
            j += 1;
            let id = std::str::from_utf8(call.arg(j))
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("ERR value is not an integer or out of range")?;
            o.redirect = Some(u64::try_from(id).unwrap_or(u64::MAX));
        } else if is("BCAST") {
            o.bcast = true;
        } else if is("OPTIN") {
            o.optin = true;
        } else if is("OPTOUT") {
            o.optout = true;
        } else if is("NOLOOP") {
            o.noloop = true;
        } else if is("PREFIX") && more {
            j += 1;
            o.prefixes.push(Box::from(call.arg(j)));
        } else {
            return Err("ERR syntax error".into());
        }
        j += 1;
    }
    if !o.on {
        return Ok(o);
    }
    if !o.bcast && !o.prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if o.optin && o.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if o.bcast && (o.optin || o.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    for (i, a) in o.prefixes.iter().enumerate() {
        for b in &o.prefixes[i + 1..] {
            if a.starts_with(b) || b.starts_with(a) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes \
                     for a single client must not overlap.",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b)
                ));
            }
        }
    }
    Ok(o)
}

/// Why the proxy cannot promise this client every invalidation now.
fn unavailable(call: &Call<'_>, o: &Options) -> Option<String> {
    let services = &call.state.services;
    if services.backend.tracking().state() != TrackingState::Up {
        return Some(
            "ERR CLIENT TRACKING is not available now: the proxy's own invalidation stream \
             is not up (PROXY_INVALIDATION, Redis's CLIENT TRACKING)"
                .into(),
        );
    }
    let ours = &services.tracking_prefixes;
    let covered = |p: &[u8]| ours.iter().any(|q| p.starts_with(q.as_bytes()));
    let bcast_within = o.bcast && !o.prefixes.is_empty() && o.prefixes.iter().all(|p| covered(p));
    if !ours.is_empty() && !bcast_within {
        return Some(
            "ERR CLIENT TRACKING needs BCAST with prefixes within PROXY_TRACKING_PREFIXES: \
             the proxy hears of writes to those keys only"
                .into(),
        );
    }
    None
}

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`.
pub fn tracking(call: &mut Call<'_>) {
    if call.argc() < 3 {
        return write::wrong_arity(call.sink.out(), "client|tracking");
    }
    let o = match parse(call) {
        Ok(o) => o,
        Err(e) => return write::error(call.sink.out(), &e),
    };
    if !o.on {
        call.client.tracking = None;
        call.client.settle();
        return write::simple(call.sink.out(), "OK");
    }
    if let Some(t) = &call.client.tracking
        && t.bcast.is_some() != o.bcast
    {
        return write::error(
            call.sink.out(),
            "ERR You can't switch BCAST mode on/off before disabling tracking for this \
             client, and then re-enabling it with a different mode.",
        );
    }
    if let Some(why) = unavailable(call, &o) {
        return write::error(call.sink.out(), &why);
    }
    let table = Arc::clone(call.state.services.backend.clients());
    let own = (call.client.proto == RESP3).then(|| Destination::of(&call.sink.waiter(0, 0), false));
    let bcast = o.bcast.then(|| o.prefixes.clone());
    match table.track(call.client.id, own, o.redirect, bcast.clone()) {
        Ok(()) => {}
        Err(Refusal::NoSuchClient) => {
            return write::error(
                call.sink.out(),
                "ERR The client ID you want redirect to does not exist",
            );
        }
    }
    // Registered, then checked again: a stream lost in between closed every client
    // registered before it, and says so here for this one.
    if call.state.services.backend.tracking().state() != TrackingState::Up {
        table.untrack(call.client.id);
        return write::error(
            call.sink.out(),
            "ERR CLIENT TRACKING is not available now: the proxy's own invalidation stream \
             is not up (PROXY_INVALIDATION, Redis's CLIENT TRACKING)",
        );
    }
    call.client.tracking = Some(Box::new(Tracked {
        id: call.client.id,
        redirect: o.redirect,
        bcast,
        optin: o.optin,
        optout: o.optout,
        noloop: o.noloop,
        caching: None,
        caching_fresh: false,
        table,
    }));
    call.client.settle();
    write::simple(call.sink.out(), "OK");
}

/// `CLIENT CACHING yes|no`.
pub fn caching(call: &mut Call<'_>) {
    if call.argc() != 3 {
        return write::wrong_arity(call.sink.out(), "client|caching");
    }
    let yes = call.arg(2).eq_ignore_ascii_case(b"yes");
    if !yes && !call.arg(2).eq_ignore_ascii_case(b"no") {
        return write::error(call.sink.out(), "ERR syntax error");
    }
    let Some(t) = call
        .client
        .tracking
        .as_deref_mut()
        .filter(|t| t.optin || t.optout)
    else {
        return write::error(
            call.sink.out(),
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with \
             OPTIN or OPTOUT mode enabled",
        );
    };
    if yes && !t.optin {
        return write::error(
            call.sink.out(),
            "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
        );
    }
    if !yes && !t.optout {
        return write::error(
            call.sink.out(),
            "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
        );
    }
    t.caching = Some(yes);
    t.caching_fresh = true;
    write::simple(call.sink.out(), "OK");
}

/// `CLIENT GETREDIR`: -1 when not tracking, 0 without a redirect, else its id.
pub fn getredir(call: &mut Call<'_>) {
    let n = match &call.client.tracking {
        None => -1,
        Some(t) => t.redirect.map_or(0, |id| id as i64),
    };
    write::integer(call.sink.out(), n);
}

/// `CLIENT TRACKINGINFO`: flags, redirect, prefixes, as Redis answers.
pub fn trackinginfo(call: &mut Call<'_>) {
    let client: &Client = call.client;
    let proto = client.proto;
    let mut flags: Vec<&str> = Vec::new();
    let (redirect, prefixes) = match &client.tracking {
        None => {
            flags.push("off");
            (-1, Vec::new())
        }
        Some(t) => {
            flags.push("on");
            if t.bcast.is_some() {
                flags.push("bcast");
            }
            if t.optin {
                flags.push("optin");
                if t.caching == Some(true) {
                    flags.push("caching-yes");
                }
            }
            if t.optout {
                flags.push("optout");
                if t.caching == Some(false) {
                    flags.push("caching-no");
                }
            }
            if t.noloop {
                flags.push("noloop");
            }
            (
                t.redirect.map_or(0, |id| id as i64),
                t.bcast.clone().unwrap_or_default(),
            )
        }
    };
    let out = call.sink.out();
    write::map(out, 3, proto);
    write::bulk(out, b"flags");
    write::set(out, flags.len(), proto);
    for f in flags {
        write::bulk(out, f.as_bytes());
    }
    write::bulk(out, b"redirect");
    write::integer(out, redirect);
    write::bulk(out, b"prefixes");
    write::array(out, prefixes.len());
    for p in &prefixes {
        write::bulk(out, p);
    }
}
