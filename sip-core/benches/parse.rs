//! Parse and write of a carrier INVITE with SDP (the figure: parse <= 2 us,
//! write <= 1.5 us on the project's 2-core machine).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip_core::message::Message;

const INVITE: &[u8] = include_bytes!("../tests/data/carrier_invite.sip");

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("parse_carrier_invite", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).expect("the fixture parses"))
    });
    let msg = Message::parse(INVITE).expect("the fixture parses");
    g.bench_function("write_carrier_invite", |b| {
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            out.clear();
            black_box(&msg).write_to(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
