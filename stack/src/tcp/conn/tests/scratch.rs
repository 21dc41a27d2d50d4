use super::*;

#[test]
fn scratch_heavy_loss_survey() {
    let mut worst = (0u64, 0u64);
    let mut total = 0u64; let mut tos = 0u64;
    for seed in 1..=200u64 {
        let config = TcpConfig::default();
        let mut sim = Sim::established(config, config);
        sim.log_payloads = false;
        sim.budget_per_poll = Some(2);
        sim.latency = Duration::from_millis(std::env::var("LAT").ok().and_then(|v| v.parse().ok()).unwrap_or(10));
        let mut rng = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        sim.filter = Box::new(move |_, _| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 100 < 20 { Verdict::Drop } else { Verdict::Deliver }
        });
        let start = sim.now;
        let base = sim.a().snd.max;
        assert!(transfer(&mut sim, A, 1 << 20, Duration::from_secs(36000)));
        let took = (sim.now - start).total_millis();
        let info = sim.a().info();
        let mut got = vec![false; (1 << 20) + 10];
        let mut dup = 0;
        for e in sim.log.iter().filter(|e| e.packet.from == A && e.packet.repr.payload_len > 0 && e.verdict == Verdict::Deliver) {
            let off = e.packet.repr.seq.distance_from(base);
            let r = off..(off + e.packet.repr.payload_len).min(1 << 20);
            if got[r.clone()].iter().all(|b| *b) { dup += 1; }
            for i in r { got[i] = true; }
        }
        println!("  dup {dup}");
        total += took; tos += info.timeouts;
        if took > worst.0 { worst = (took, seed); }
        println!("seed {seed}: {took} ms timeouts {} fast {} rtx {}", info.timeouts, info.fast_retransmits, info.retransmits);
    }
    println!("worst {worst:?} mean {} timeouts {tos}", total / 40);
}

#[test]
fn scratch_trace() {
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    sim.budget_per_poll = Some(2);
    let mut rng = std::env::var("S").map(|v| v.parse::<u64>().unwrap()).unwrap_or(5).wrapping_mul(0x9E3779B97F4A7C15) | 1;
    sim.filter = Box::new(move |_, _| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng % 100 < 20 { Verdict::Drop } else { Verdict::Deliver }
    });
    sim.latency = Duration::from_millis(std::env::var("LAT").ok().and_then(|v| v.parse().ok()).unwrap_or(10));
    let base = sim.a().snd.max;
    assert!(transfer(&mut sim, A, std::env::var("LEN").map(|v| v.parse().unwrap()).unwrap_or(200_000), Duration::from_secs(36000)));
    for e in sim.log.iter() {
        let p = &e.packet;
        if p.from == A && p.repr.payload_len > 0 {
            eprintln!("{:?} A seq {} len {} {:?}", e.at, p.repr.seq.distance_from(base), p.repr.payload_len, e.verdict);
        } else if p.from == B {
            eprintln!("{:?} B ack {} sack {:?} {:?}", e.at, p.repr.ack.distance_from(base), p.repr.options.sack.as_slice().iter().map(|(s, t)| (s.distance_from(base), t.distance_from(base))).collect::<Vec<_>>(), e.verdict);
        }
    }
}

#[test]
fn scratch_spurious() {
    let mut spurious = 0;
    let mut detections = 0;
    for seed in 1..=40u64 {
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    sim.budget_per_poll = Some(2);
    sim.latency = Duration::from_millis(std::env::var("LAT").ok().and_then(|v| v.parse().ok()).unwrap_or(10));
    let mut rng = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    sim.filter = Box::new(move |_, _| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng % 100 < 20 { Verdict::Drop } else { Verdict::Deliver }
    });
    let data = pattern(0, 200_000, 0);
    assert_eq!(sim.a().send(&data), Ok(200_000));
    let mut buf = vec![0u8; 300_000];
    let mut got = 0;
    while got < 200_000 {
        let was = sim.a().rec.head_due;
        sim.step();
        while let Ok(n) = sim.b().recv(&mut buf) { if n == 0 { break; } got += n; }
        let a_una = sim.a().snd.una;
        if !was && sim.a().rec.head_due {
            detections += 1;
            if sim.b().rcv.nxt > a_una { spurious += 1; }
        }
    }
    }
    println!("detections {detections} spurious {spurious}");
}
