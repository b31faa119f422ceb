//! Exchange figures for monitors: delivery rate, on-time share, electronic-exchange rate and
//! connected agencies, per agency, per agency group and nationally, for any range of days.
//! Built only from the pre-aggregated counters in [`crate::stats`] and the pending set.
//!
//! Definitions (also in the README):
//! - *delivery rate* = deliveries completed with a verified receipt ÷ deliveries due, where a
//!   delivery falls due when the hub accepts the document; per agency it counts deliveries
//!   addressed **to** that agency. *On time* = receipt within `on_time_secs` of acceptance.
//! - *electronic-exchange rate* = documents the agency exchanged through the axis (sent and
//!   accepted, or received with a verified receipt) ÷ (those + the documents it reported as
//!   exchanged on paper only), for the months reported.
//! - *connected agencies* = active agencies connected at some time in the range ÷ registered.
//! - *registered in time* = received documents the agency registered (`03`) within
//!   `registration_working_days` working days of their delivery ÷ documents delivered to it,
//!   both counted on the day of delivery.
//! - *median completion time* = median time from delivery to completed (`06`) of the
//!   documents completed in the range, interpolated in its bucket (see [`crate::business`]).
//! - *outstanding* = documents delivered to the agency and not yet completed, rejected,
//!   withdrawn, replaced or removed, by days since delivery (as of today, whatever the range).

use crate::business;
use crate::hub::{now_ms, Hub};
use crate::state::NodeState;
use crate::state::{HubBackend, StatsView};
use crate::stats::{self, Day, NATIONAL};
use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub mod csv;

/// What to report on.
#[derive(Clone, Debug)]
pub struct Query {
    /// First day (UTC).
    pub from: Day,
    /// Last day (UTC), inclusive.
    pub to: Day,
    /// Only this agency (and national and its group).
    pub agency: Option<poros_protocol::AgencyId>,
}

impl Query {
    /// From `from`/`to` (`YYYY-MM-DD`), `month` (`YYYY-MM`) or `year` (`YYYY`); default: the
    /// current month.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        month: Option<&str>,
        year: Option<&str>,
        agency: Option<&str>,
    ) -> Result<Query> {
        let today = Day::of_ms(now_ms());
        let (from, to) =
            if let Some(m) = month {
                let first = Day::parse(&format!("{m}-01"))
                    .ok_or_else(|| anyhow::anyhow!("month {m:?} is not YYYY-MM"))?;
                let mut last = first;
                while last.next().m == first.m {
                    last = last.next();
                }
                (first, last)
            } else if let Some(y) = year {
                let first = Day::parse(&format!("{y}-01-01"))
                    .ok_or_else(|| anyhow::anyhow!("year {y:?} is not YYYY"))?;
                (
                    first,
                    Day {
                        y: first.y,
                        m: 12,
                        d: 31,
                    },
                )
            } else {
                let from = match from {
                    Some(f) => Day::parse(f)
                        .ok_or_else(|| anyhow::anyhow!("from {f:?} is not YYYY-MM-DD"))?,
                    None => Day { d: 1, ..today },
                };
                let to = match to {
                    Some(t) => Day::parse(t)
                        .ok_or_else(|| anyhow::anyhow!("to {t:?} is not YYYY-MM-DD"))?,
                    None => today,
                };
                (from, to)
            };
        if to < from {
            bail!("the range ends ({to}) before it starts ({from})");
        }
        let agency = agency.map(poros_protocol::AgencyId::parse).transpose()?;
        Ok(Query { from, to, agency })
    }
}

fn pct(num: u64, den: u64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(((num as f64) * 10000.0 / den as f64).round() / 100.0)
    }
}

/// Figures of one scope from its summed counters.
pub fn figures(scope: &str, m: &BTreeMap<String, u64>, overdue: u64) -> Value {
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    let due = g("in_due");
    let (on_time, late, rejected, expired) = (
        g("in_ontime"),
        g("in_late"),
        g("in_rejected"),
        g("in_expired"),
    );
    let delivered = on_time + late;
    let pending = due.saturating_sub(delivered + rejected + expired);
    let sent = g("sent");
    // Documents exchanged through the axis: those the agency sent (accepted by the hub) and
    // those it actually received (delivered with a receipt; a document still pending or
    // rejected has not been exchanged). Groups and the nation sum the same quantities, as
    // their paper counts do.
    let electronic = sent + delivered;
    let paper = g("paper_sent") + g("paper_received");
    let by_reason: Map<String, Value> = m
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("rej:").map(|r| (r.to_string(), json!(v))))
        .collect();
    json!({
        "scope": scope,
        "sent": sent,
        "received": delivered,
        "due": due,
        "delivered": delivered,
        "on_time": on_time,
        "late": late,
        "rejected": rejected,
        "rejected_by_reason": by_reason,
        "expired": expired,
        "pending": pending,
        "overdue": overdue,
        "delivery_rate": pct(delivered, due),
        "on_time_rate": pct(on_time, due),
        "paper_sent": g("paper_sent"),
        "paper_received": g("paper_received"),
        "electronic_rate": if paper == 0 && electronic == 0 { Value::Null } else { pct(electronic, electronic + paper) },
        "avg_latency_ms": g("in_latency_ms").checked_div(delivered),
        "business_delivered": g(business::DELIVERED),
        "registered_in_time": g(business::REGISTERED_IN_WINDOW),
        "registered_in_time_rate": pct(g(business::REGISTERED_IN_WINDOW), g(business::DELIVERED)),
        "completed": (0..=business::DONE_BUCKETS_SECS.len())
            .map(|k| g(&business::done_bucket_metric(k)))
            .sum::<u64>(),
        "median_completion_secs": business::median_secs(m),
    })
}

/// Documents delivered and not yet ended (completed, rejected, withdrawn, replaced or
/// removed), per scope and age band, as of `today`: each band sums `delivered − closed` over the
/// delivery days it covers.
async fn outstanding(
    r: &dyn StatsView,
    today: Day,
    only: Option<&[String; 3]>,
) -> Result<BTreeMap<String, Map<String, Value>>> {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let day_ago = |n: u32| Day::of_ms(day_start_ms(today).saturating_sub(n as u64 * 86_400_000));
    for (label, lo, hi) in business::AGE_BANDS {
        let last = day_ago(lo);
        let first = match hi {
            Some(h) => day_ago(h - 1),
            None => Day {
                y: 1970,
                m: 1,
                d: 1,
            },
        };
        let periods = stats::cover(first, last);
        let sums = match only {
            Some(scopes) => {
                let mut s = stats::Sums::new();
                for scope in scopes {
                    s.extend(r.sums(&periods, Some(scope)).await?);
                }
                s
            }
            None => r.sums(&periods, None).await?,
        };
        for (scope, m) in sums {
            let g = |k: &str| m.get(k).copied().unwrap_or(0);
            let n = g(business::DELIVERED).saturating_sub(g(business::CLOSED));
            out.entry(scope).or_default().insert(label.into(), json!(n));
        }
    }
    Ok(out)
}

/// Add the outstanding-by-age figures to a scope's row (every band present, zeros included).
fn add_outstanding(row: &mut Value, scope: &str, all: &BTreeMap<String, Map<String, Value>>) {
    let mut bands = Map::new();
    let mut total = 0;
    for (label, _, _) in business::AGE_BANDS {
        let n = all
            .get(scope)
            .and_then(|m| m.get(label))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        total += n;
        bands.insert(label.into(), json!(n));
    }
    row["outstanding"] = json!(total);
    row["outstanding_by_age"] = Value::Object(bands);
}

/// The full report behind the dashboard, the JSON API and `poros-hub stats`.
pub async fn report(hub: &Hub, q: &Query) -> Result<Value> {
    // Counters are keyed by acceptance day, so no day after today holds anything: a range
    // reaching today can be read to the end of its year, letting whole months and years
    // replace day-by-day scans (month to date becomes one month read).
    let today = Day::of_ms(now_ms());
    let read_to = if q.to >= today {
        Day {
            y: q.to.y,
            m: 12,
            d: 31,
        }
    } else {
        q.to
    };
    let periods = stats::cover(q.from, read_to);
    let r = hub.store.stats_snapshot().await?;
    // With an agency filter only its own, its group's and the national counters are read.
    let only = q.agency.as_ref().map(stats::scopes);
    let mut sums = match &only {
        Some(scopes) => {
            let mut out = stats::Sums::new();
            for scope in scopes {
                out.extend(r.sums(&periods, Some(scope)).await?);
            }
            out
        }
        None => r.sums(&periods, None).await?,
    };
    // Paper counts are monthly: a month the range only partly covers contributes its whole
    // paper count (its electronic counts come from the days covered), read from the reports.
    let partial: Vec<String> = months_touched(q.from, q.to)
        .into_iter()
        .filter(|m| {
            !periods
                .iter()
                .any(|p| p == m || (p.starts_with('Y') && m[1..].starts_with(&p[1..])))
        })
        .map(|m| m[1..].to_string())
        .collect();
    for (scope, m) in r.paper_sums(&partial).await? {
        if only.as_ref().is_some_and(|o| !o.contains(&scope)) {
            continue;
        }
        let e = sums.entry(scope).or_default();
        for k in ["paper_sent", "paper_received"] {
            if let Some(v) = m.get(k) {
                *e.entry(k.to_string()).or_default() += v;
            }
        }
    }
    let seen = r.seen(&periods).await?;
    let open = outstanding(&*r, today, only.as_ref()).await?;
    drop(r);
    let from_ms = day_start_ms(q.from);
    let to_ms = day_start_ms(q.to.next());
    let on_time_ms = hub.cfg.monitoring.on_time_secs * 1000;
    let overdue = hub
        .store
        .overdue(from_ms, to_ms, now_ms().saturating_sub(on_time_ms))
        .await?;
    let nodes = hub.nodes();
    let connected_now: std::collections::HashSet<_> = hub.connected_agencies();
    let empty = BTreeMap::new();
    let registered: Vec<_> = nodes
        .iter()
        .filter(|n| n.state != NodeState::Pending)
        .collect();
    let seen_active = registered
        .iter()
        .filter(|n| n.state == NodeState::Active && seen.contains(n.agency.as_str()))
        .count();

    let mut agencies = Vec::new();
    for n in &nodes {
        if q.agency.as_ref().is_some_and(|a| a != &n.agency) {
            continue;
        }
        let mut f = figures(
            n.agency.as_str(),
            sums.get(n.agency.as_str()).unwrap_or(&empty),
            overdue.get(n.agency.as_str()).copied().unwrap_or(0),
        );
        f["name"] = json!(n.name);
        f["group"] = json!(n.agency.group().to_string());
        f["state"] = json!(n.state);
        f["connected"] = json!(connected_now.contains(&n.agency));
        f["seen_in_period"] = json!(seen.contains(n.agency.as_str()));
        add_outstanding(&mut f, n.agency.as_str(), &open);
        agencies.push(f);
    }
    let mut groups: BTreeMap<String, (u64, usize, usize)> = BTreeMap::new();
    let only_group = q.agency.as_ref().map(|a| a.group());
    for n in &registered {
        // With an agency filter, only that agency's group is reported (its counters are the
        // only group counters read).
        if only_group.is_some_and(|g| g != n.agency.group()) {
            continue;
        }
        let e = groups.entry(n.agency.group().to_string()).or_default();
        e.0 += overdue.get(n.agency.as_str()).copied().unwrap_or(0);
        e.1 += 1;
        if n.state == NodeState::Active && seen.contains(n.agency.as_str()) {
            e.2 += 1;
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, (od, reg, seen_n))| {
            let scope = format!("group:{g}");
            let mut f = figures(&scope, sums.get(&scope).unwrap_or(&empty), od);
            f["group"] = json!(g);
            f["registered"] = json!(reg);
            f["connected"] = json!(seen_n);
            add_outstanding(&mut f, &scope, &open);
            f
        })
        .collect();
    let mut national = figures(
        NATIONAL,
        sums.get(NATIONAL).unwrap_or(&empty),
        overdue.values().sum(),
    );
    national["registered"] = json!(registered.len());
    national["connected"] = json!(seen_active);
    national["connected_rate"] = pct(seen_active as u64, registered.len() as u64);
    national["connected_now"] = json!(connected_now.len());
    add_outstanding(&mut national, NATIONAL, &open);

    Ok(json!({
        "from": q.from.to_string(),
        "to": q.to.to_string(),
        "on_time_secs": hub.cfg.monitoring.on_time_secs,
        "registration_working_days": hub.cfg.monitoring.registration_working_days,
        "alert_below_percent": hub.cfg.monitoring.alert_below_percent,
        "generated_ms": now_ms(),
        "national": national,
        "groups": groups,
        "agencies": agencies,
    }))
}

/// Month keys (`M2026-11`) of every month the range touches.
fn months_touched(from: Day, to: Day) -> Vec<String> {
    let mut out = Vec::new();
    let (mut y, mut m) = (from.y, from.m);
    while (y, m) <= (to.y, to.m) {
        out.push(format!("M{y:04}-{m:02}"));
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    out
}

/// National delivery and electronic rates for each of the 30 days ending at `to`.
pub async fn trend(hub: &Hub, to: Day) -> Result<Value> {
    let mut days = Vec::new();
    let mut d = Day::of_ms(day_start_ms(to).saturating_sub(29 * 86_400_000));
    for _ in 0..30 {
        days.push(d);
        d = d.next();
    }
    let r = hub.store.stats_snapshot().await?;
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for day in days {
        let s = r.sums(&[day.key()], Some(NATIONAL)).await?;
        let f = figures(NATIONAL, s.get(NATIONAL).unwrap_or(&empty), 0);
        out.push(
            json!({"day": day.to_string(), "due": f["due"], "delivered": f["delivered"],
                        "delivery_rate": f["delivery_rate"], "on_time_rate": f["on_time_rate"]}),
        );
    }
    Ok(json!(out))
}

/// Unix ms at 00:00 UTC of `d`.
pub fn day_start_ms(d: Day) -> u64 {
    let date = time::Date::from_calendar_date(
        d.y,
        time::Month::try_from(d.m).unwrap_or(time::Month::January),
        d.d,
    )
    .unwrap_or(time::Date::MIN);
    let t = date.midnight().assume_utc().unix_timestamp();
    (t.max(0) as u64) * 1000
}

/// Compare the live counters with a recount from the stored delivery records (all time).
pub async fn check(hub: &Hub) -> Result<Value> {
    let (recount, mismatches) =
        recount_differences(hub.store.as_ref(), hub.cfg.monitoring.on_time_secs * 1000).await?;
    let mismatches: Vec<Value> = mismatches
        .into_iter()
        .map(
            |d| json!({"scope": d.scope, "metric": d.metric, "live": d.live, "recount": d.recount}),
        )
        .collect();
    Ok(json!({"equal": mismatches.is_empty(), "mismatches": mismatches, "recount": recount}))
}

/// One statistic whose live value differs from its recount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub scope: String,
    pub metric: String,
    pub live: u64,
    pub recount: u64,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Difference {
            scope,
            metric,
            live,
            recount,
        } = self;
        write!(f, "{scope} {metric}: live {live}, recount {recount}")
    }
}

/// A store's live statistics (all time) against a recount from its stored documents and
/// answers: the recount, and every difference. Every counter the recount can derive is
/// compared, on either side: a live counter the records do not explain is as wrong as a
/// missing one. (The hub's statistics check and `store migrate`'s verification.)
pub async fn recount_differences(
    store: &dyn HubBackend,
    on_time_ms: u64,
) -> Result<(stats::Sums, Vec<Difference>), poros_store::StoreError> {
    let recount = store.recount(on_time_ms).await?;
    let today = Day::of_ms(now_ms());
    let all = stats::cover(
        Day {
            y: 1970,
            m: 1,
            d: 1,
        },
        Day {
            y: today.y,
            m: 12,
            d: 31,
        },
    );
    let live = store.stats_snapshot().await?.sums(&all, None).await?;
    let checked = |m: &str| {
        matches!(m, "sent" | "out_due" | "in_due")
            || ["in_", "out_"].iter().any(|p| {
                m.strip_prefix(p)
                    .is_some_and(|rest| matches!(rest, "ontime" | "late" | "rejected" | "expired"))
            })
            || m.starts_with("rej:")
    };
    let mut keys = std::collections::BTreeSet::new();
    for (scope, metrics) in recount.iter().chain(live.iter()) {
        for m in metrics.keys().filter(|m| checked(m)) {
            keys.insert((scope.clone(), m.clone()));
        }
    }
    let fig = |s: &stats::Sums, scope: &str, m: &str| {
        s.get(scope).and_then(|x| x.get(m)).copied().unwrap_or(0)
    };
    let differences = keys
        .into_iter()
        .filter_map(|(scope, metric)| {
            let (live, recount) = (fig(&live, &scope, &metric), fig(&recount, &scope, &metric));
            (live != recount).then_some(Difference {
                scope,
                metric,
                live,
                recount,
            })
        })
        .collect();
    Ok((recount, differences))
}
