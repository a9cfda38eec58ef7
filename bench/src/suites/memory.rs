//! Memory under password checks: countersign's resident set (`VmRSS`) and its peak (`VmHWM`)
//! from /proc before and after a fixed number of argon2id checks (local users' simple binds
//! on persistent LDAP connections) by concurrent clients. Target: under 100 MB after 2,000
//! checks at 16 clients (issue 7, item 8).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::harness::{Harness, Window, level};
use crate::slapd::local_dn;
use crate::suites::ldap::bind_client;

pub async fn run(h: &Harness, checks: usize, clients: usize) -> anyhow::Result<()> {
    println!(
        "### Memory: countersign's RSS around {checks} password checks (local users' LDAP simple binds) at {clients} clients\n"
    );
    println!("| checks | clients | VmRSS before | VmRSS after | VmHWM after | checks per second |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let (rss_before, _) = h.memory_kib()?;
    let window = Window::Counted {
        left: Arc::new(AtomicUsize::new(checks)),
    };
    let start = Instant::now();
    let addr = h.ldap_addr.clone();
    let samples = level(clients, window, |i, w| {
        bind_client(addr.clone(), local_dn(i), w, true)
    })
    .await?;
    let rate = samples.len() as f64 / start.elapsed().as_secs_f64();
    let (rss_after, hwm_after) = h.memory_kib()?;
    println!(
        "| {} | {clients} | {} | {} | {} | {rate:.1} |\n",
        samples.len(),
        mb(rss_before),
        mb(rss_after),
        mb(hwm_after)
    );
    let target = 100e6 / 1024.0;
    println!(
        "RSS after the checks is {} the 100 MB target.\n",
        if (rss_after as f64) < target {
            "under"
        } else {
            "OVER"
        }
    );
    Ok(())
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}
