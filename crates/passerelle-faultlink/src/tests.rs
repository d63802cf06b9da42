//! Tests of the link over real loopback sockets. Timings are only checked as lower bounds
//! (a delay or a cap can only make things slower); every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{FaultLink, LinkConfig, Rng, Stats};

/// Bound of every wait for something that should happen at once on loopback.
const SOON: Duration = Duration::from_secs(10);

/// A server that echoes each connection until its client closes, then closes too.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that sends `n` patterned bytes on each connection, then closes.
async fn source_server(n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(&pattern(n)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn pattern(n: usize) -> Vec<u8> {
    let mut r = Rng::new(n as u64);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

/// Reads until EOF or an error, at most `SOON`: the bytes, and whether it ended with an error.
async fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {SOON:?} ({} bytes read)",
                got.len()
            ),
            Ok(Ok(0)) => return (got, false),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (got, true),
        }
    }
}

/// One echo round trip of `msg`, bounded.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Duration> {
    let start = Instant::now();
    s.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(SOON, s.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::other("no echo in time"))??;
    assert_eq!(back, msg);
    Ok(start.elapsed())
}

async fn wait_stats(link: &FaultLink, what: &str, ok: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + SOON;
    loop {
        let s = link.stats();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn forwards_both_ways_in_order_through_slices_and_delay() {
    let link = FaultLink::start(
        echo_server().await,
        LinkConfig::new()
            .with_rtt(Duration::from_millis(20))
            .with_slices(1, 700)
            .with_seed(1),
    )
    .await
    .unwrap();
    let data = pattern(300_000);
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        // the half-close travels through the link and comes back as the echo's close
        w.shutdown().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::new();
        tokio::time::timeout(SOON, r.read_to_end(&mut got))
            .await
            .expect("echo ended in time")
            .unwrap();
        got
    };
    let ((), got) = tokio::join!(send, recv);
    assert!(got == data, "echo differs: {} bytes back", got.len());
    let st = wait_stats(&link, "connection closed", |s| s.live == 0).await;
    assert_eq!(
        (st.client_to_target, st.target_to_client, st.accepted),
        (300_000, 300_000, 1),
        "{st:?}"
    );
    assert_eq!((st.cuts, st.resets, st.refused), (0, 0, 0), "{st:?}");
}

#[tokio::test]
async fn latency_adds_at_least_the_round_trip_time() {
    let link = FaultLink::start(
        echo_server().await,
        LinkConfig::new().with_rtt(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    for i in 0..3u8 {
        let rtt = round_trip(&mut s, &[i; 10]).await.unwrap();
        assert!(rtt >= Duration::from_millis(195), "round trip {rtt:?}");
    }
}

#[tokio::test]
async fn a_latency_changed_at_run_time_applies_to_the_next_chunks() {
    let link = FaultLink::start(echo_server().await, LinkConfig::new())
        .await
        .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut s, b"warm").await.unwrap();
    link.update(|c| c.latency = Duration::from_millis(150));
    assert_eq!(link.config().latency, Duration::from_millis(150));
    let rtt = round_trip(&mut s, b"slow now").await.unwrap();
    assert!(rtt >= Duration::from_millis(295), "round trip {rtt:?}");
}

#[tokio::test]
async fn the_cap_bounds_each_direction_from_below() {
    const N: usize = 150_000;
    const RATE: u64 = 100_000;
    // towards the target: a client writes N bytes to an echo, which sends them back
    let link = FaultLink::start(echo_server().await, LinkConfig::new().with_bandwidth(RATE))
        .await
        .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let start = Instant::now();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&pattern(N)).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got))
            .await
            .expect("echo ended")
            .unwrap();
        got.len()
    };
    let ((), back) = tokio::join!(send, recv);
    let took = start.elapsed();
    assert_eq!(back, N);
    // at most one burst (5 KB at this rate) passes without waiting
    assert!(
        took >= Duration::from_millis(1_200),
        "{N} bytes in {took:?}"
    );

    // towards the client alone
    let link = FaultLink::start(
        source_server(N).await,
        LinkConfig::new().with_bandwidth(RATE),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut got))
        .await
        .expect("source ended")
        .unwrap();
    let took = start.elapsed();
    assert!(got == pattern(N), "{} bytes", got.len());
    assert!(
        took >= Duration::from_millis(1_200),
        "{N} bytes in {took:?}"
    );
    assert_eq!(link.stats().target_to_client, N as u64);
}

#[tokio::test]
async fn a_cut_closes_live_connections_and_refuses_new_ones_for_a_while() {
    let link = FaultLink::start(echo_server().await, LinkConfig::new())
        .await
        .unwrap();
    let mut live = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut live, b"before").await.unwrap();

    link.cut(Duration::from_millis(800));
    let (_, errored) = read_to_close(&mut live).await;
    assert!(
        errored,
        "a cut resets the connection (RST), not a clean close"
    );

    // refused while the window lasts: accepted by the listener, then reset before any byte
    let mut refused = TcpStream::connect(link.addr()).await.unwrap();
    let _ = refused.write_all(b"anyone?").await;
    let (got, _) = read_to_close(&mut refused).await;
    assert!(got.is_empty());
    let st = link.stats();
    assert_eq!(
        (st.cuts, st.cut_connections, st.accepted),
        (1, 1, 1),
        "{st:?}"
    );
    assert!(st.refused >= 1, "{st:?}");

    // and served again after it, bounded
    let deadline = Instant::now() + SOON;
    loop {
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        if round_trip(&mut s, b"after").await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {:?}",
            link.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(link.stats().accepted, 2);
}

#[tokio::test]
async fn cuts_follow_the_schedule_until_it_is_turned_off() {
    let link = FaultLink::start(
        echo_server().await,
        LinkConfig::new().with_cuts(Duration::from_millis(100), Duration::ZERO),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let (_, errored) = read_to_close(&mut s).await;
    assert!(errored);
    wait_stats(&link, "three scheduled cuts", |s| s.cuts >= 3).await;

    link.update(|c| c.cut_every = None);
    let before = link.stats().cuts;
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // a cut already due as the schedule was turned off may still land
    assert!(link.stats().cuts <= before + 1, "{:?}", link.stats());
    round_trip(&mut s, b"still here").await.unwrap();
}

/// Runs one connection through a link resetting after 2000..=6000 bytes with `seed`; returns
/// the bytes forwarded both ways before the reset.
async fn bytes_before_reset(seed: u64) -> u64 {
    let link = FaultLink::start(
        echo_server().await,
        LinkConfig::new()
            .with_resets(2_000, 6_000)
            .with_slices(1, 300)
            .with_seed(seed),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let (mut r, mut w) = s.split();
    let send = async {
        // far more than the budget; the reset makes the writes fail at some point
        for _ in 0..20 {
            if w.write_all(&[7u8; 1000]).await.is_err() {
                break;
            }
        }
    };
    let recv = async {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
                Err(_) => panic!("not reset in time"),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
    };
    tokio::join!(send, recv);
    let st = wait_stats(&link, "reset", |s| s.resets == 1 && s.live == 0).await;
    st.bytes()
}

#[tokio::test]
async fn resets_come_after_a_seeded_random_number_of_bytes() {
    let a = bytes_before_reset(9).await;
    assert!((2_000..=6_000).contains(&a), "{a}");
    // the budget of connection 0 is drawn first from the connection's own generator
    assert_eq!(a, Rng::derive(9, 0).range(2_000, 6_000));
    assert_eq!(
        bytes_before_reset(9).await,
        a,
        "same seed, same reset point"
    );
    let others: Vec<u64> = [10, 11, 12]
        .into_iter()
        .map(|s| Rng::derive(s, 0).range(2_000, 6_000))
        .collect();
    assert!(others.iter().any(|o| *o != a), "{others:?}");
    assert_eq!(bytes_before_reset(10).await, others[0]);
}

#[tokio::test]
async fn an_unreachable_target_resets_the_client() {
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let link = FaultLink::start(gone, LinkConfig::new()).await.unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let (got, _) = read_to_close(&mut s).await;
    assert!(got.is_empty());
    let st = wait_stats(&link, "connect failure", |s| s.connect_failures == 1).await;
    assert_eq!(st.bytes(), 0);
}

#[tokio::test]
async fn stop_closes_every_connection_and_the_port() {
    let link = FaultLink::start(echo_server().await, LinkConfig::new())
        .await
        .unwrap();
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut s, b"hello").await.unwrap();
    link.stop().await;
    let (got, _) = read_to_close(&mut s).await;
    assert!(got.is_empty());
    assert_eq!(link.stats().live, 0);
    assert!(
        TcpStream::connect(link.addr()).await.is_err(),
        "the port still accepts"
    );
    link.stop().await;
}

#[tokio::test]
async fn a_stall_holds_the_data_without_closing_and_delivers_it_when_it_ends() {
    let link = FaultLink::start(echo_server().await, LinkConfig::new())
        .await
        .unwrap();
    let mut old = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut old, b"before").await.unwrap();
    link.update(|c| c.stall = true);
    let mut new = TcpStream::connect(link.addr()).await.unwrap();
    for s in [&mut old, &mut new] {
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        // nothing comes back, and the connection is not closed either
        let r = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
        assert!(r.is_err(), "data passed a stalled link: {r:?}");
    }
    let st = link.stats();
    assert_eq!((st.live, st.cuts, st.resets), (2, 0, 0), "{st:?}");
    link.update(|c| c.stall = false);
    for s in [&mut old, &mut new] {
        let mut buf = [0u8; 4];
        tokio::time::timeout(SOON, s.read_exact(&mut buf))
            .await
            .expect("held data delivered once the stall ended")
            .unwrap();
        assert_eq!(&buf, b"held");
        round_trip(s, b"after").await.unwrap();
    }
}
