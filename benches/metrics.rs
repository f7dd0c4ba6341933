//! Cost of a `/metrics` scrape with about 10,000 series.
//!
//! Starts a broker (embedded store) in this process, registers and updates series through the
//! same global recorder the broker renders (counters and gauges with a synthetic bounded label,
//! plus histograms that render a line per bucket), then scrapes `GET /metrics` over loopback
//! HTTP and reports the scrape time percentiles, the body size and the sample count.
//!
//! ```text
//! cargo bench --bench metrics                        # 10,000 series, 200 scrapes
//! BENCH_SERIES=50000 BENCH_SCRAPES=50 cargo bench --bench metrics
//! ```

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kubeline_broker::{Broker, BrokerArgs};
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-key";
/// Buckets of a `_seconds` histogram plus `+Inf`, `_sum` and `_count`: lines per histogram.
const LINES_PER_HISTOGRAM: usize = 19 + 3;

fn env_or(name: &str, default: &str) -> usize {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .parse()
        .unwrap_or_else(|_| panic!("{name}"))
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let series = env_or("BENCH_SERIES", "10000");
    let scrapes = env_or("BENCH_SCRAPES", if measuring { "200" } else { "5" });
    let args = BrokerArgs::for_dev(
        "127.0.0.1:0".parse().unwrap(),
        format!("admin={KEY}").parse().unwrap(),
        "bench=token".parse().unwrap(),
    );
    let broker = Broker::bind(&args).await.expect("broker");
    let url = format!("http://{}/metrics", broker.local_addr());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let served = tokio::spawn(broker.serve(async move { token.cancelled().await }));

    // A fifth of the series as histogram lines (each histogram renders LINES_PER_HISTOGRAM), the
    // rest split between counters and gauges; every one updated a few times.
    let histograms = series / 5 / LINES_PER_HISTOGRAM;
    let scalars = series - histograms * LINES_PER_HISTOGRAM;
    for i in 0..scalars {
        let shard = (i % 100).to_string();
        let slot = (i / 100).to_string();
        if i % 2 == 0 {
            metrics::counter!("kubeline_bench_events_total", "shard" => shard, "slot" => slot)
                .increment(i as u64 + 1);
        } else {
            metrics::gauge!("kubeline_bench_level", "shard" => shard, "slot" => slot).set(i as f64);
        }
    }
    for i in 0..histograms {
        let h = metrics::histogram!("kubeline_bench_wait_seconds", "slot" => i.to_string());
        for k in 0..20 {
            h.record(0.0001 * f64::from(k * k));
        }
    }

    let http = reqwest::Client::new();
    let scrape = || async {
        let res = http
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("scrape");
        assert_eq!(res.status(), 200);
        res.text().await.expect("body")
    };
    let body = scrape().await;
    let samples = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let mut times = Histogram::<u64>::new(3).unwrap();
    for _ in 0..scrapes {
        let started = Instant::now();
        let body = scrape().await;
        times.record(started.elapsed().as_micros() as u64).unwrap();
        std::hint::black_box(body);
    }
    let ms = |q: f64| Duration::from_micros(times.value_at_quantile(q)).as_secs_f64() * 1000.0;
    println!(
        "metrics scrape: {samples} samples ({scalars} counters/gauges, {histograms} histograms), \
         {} KiB; {scrapes} scrapes: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        body.len() / 1024,
        ms(0.5),
        ms(0.9),
        ms(0.99)
    );
    stop.cancel();
    let _ = served.await;
}
