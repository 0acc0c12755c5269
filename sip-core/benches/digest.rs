//! Digest response computation: the per-request cost of answering or verifying a challenge.
//!
//! Run: `cargo bench --bench digest`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sip_core::auth::{answer_challenge, Algorithm, Credentials, DigestChallenge, DigestRequest};

fn bench_response(c: &mut Criterion) {
    let credentials = Credentials::with_password("Mufasa", "Circle of Life");
    let request = DigestRequest {
        method: "REGISTER",
        uri: "sip:registrar.example.com",
        body: b"",
    };
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let challenge = DigestChallenge::new(
            "http-auth@example.org",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            algorithm,
        );
        c.bench_function(&format!("digest_response_{algorithm}"), |b| {
            b.iter(|| {
                answer_challenge(
                    black_box(&challenge),
                    &credentials,
                    &request,
                    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                    black_box(1),
                )
                .expect("a password answers every algorithm")
            })
        });
    }
}

criterion_group!(benches, bench_response);
criterion_main!(benches);
