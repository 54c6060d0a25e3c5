//! Micro-benchmarks of the request-path functions: route matching and the CORS decision.
//! Run with `cargo bench`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use crossgate::config::{parse_yaml, Loaded};
use crossgate::rules::{compile, Rules};
use pingora::http::{RequestHeader, ResponseHeader};

fn rules(routes: usize) -> Rules {
    let mut yaml = String::from(
        "listen: 127.0.0.1:0\nupstreams:\n  b: {servers: [127.0.0.1:9]}\ncors_policies:\n  app:\n    allow_origins: [https://app.example.com, https://*.example.org, {regex: 'https://pr-[0-9]+\\.example\\.net'}]\n    allow_methods: [GET, PUT]\n    allow_headers: [content-type]\n    allow_credentials: true\n    max_age: 600\nroutes:\n",
    );
    for i in 0..routes {
        yaml.push_str(&format!(
            "  - {{name: r{i}, path: /svc{i}/, upstream: b, cors: app}}\n"
        ));
    }
    crossgate::test_util::rules_from_yaml(&yaml)
}

fn route_matching(c: &mut Criterion) {
    for n in [10, 100, 1000] {
        let r = rules(n);
        let last = format!("/svc{}/items", n - 1);
        c.bench_function(&format!("route_match_last_of_{n}"), |b| {
            b.iter(|| black_box(r.find_index(black_box("api.example.com"), black_box(&last))))
        });
    }
}

fn cors(c: &mut Criterion) {
    let r = rules(1);
    let policy = r.routes[0].cors.clone().unwrap();
    let mut allowed = RequestHeader::build("GET", b"/svc0/x", None).unwrap();
    allowed
        .insert_header("origin", "https://app.example.com")
        .unwrap();
    let mut denied = RequestHeader::build("GET", b"/svc0/x", None).unwrap();
    denied
        .insert_header("origin", "https://evil.example")
        .unwrap();
    let mut preflight = RequestHeader::build("OPTIONS", b"/svc0/x", None).unwrap();
    preflight
        .insert_header("origin", "https://app.example.com")
        .unwrap();
    preflight
        .insert_header("access-control-request-method", "PUT")
        .unwrap();

    c.bench_function("cors_actual_allowed", |b| {
        b.iter(|| {
            let check = policy.check_origin(black_box(&allowed));
            let mut resp = ResponseHeader::build(200, Some(8)).unwrap();
            policy.apply_actual(&mut resp, &check);
            black_box(resp)
        })
    });
    c.bench_function("cors_actual_denied", |b| {
        b.iter(|| {
            let check = policy.check_origin(black_box(&denied));
            let mut resp = ResponseHeader::build(200, Some(8)).unwrap();
            policy.apply_actual(&mut resp, &check);
            black_box(resp)
        })
    });
    c.bench_function("cors_preflight", |b| {
        b.iter(|| black_box(policy.preflight(black_box(&preflight))))
    });
}

fn jsonp_wrapper(c: &mut Criterion) {
    use crossgate::jsonp::{validate, Wrap, Wrapper};
    let callback = validate("app.handle").unwrap();
    let mut group = c.benchmark_group("jsonp_wrap_1MiB");
    let plain: Vec<u8> = br#"{"id":12345,"name":"Ada Lovelace","tags":["a","b","c"]},"#
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    // The same size, with a U+2028 every 64 bytes to escape.
    let mut separators = plain.clone();
    for i in (32..separators.len() - 3).step_by(64) {
        separators[i..i + 3].copy_from_slice("\u{2028}".as_bytes());
    }
    group.throughput(criterion::Throughput::Bytes(plain.len() as u64));
    for (name, body) in [("plain", &plain), ("u2028", &separators)] {
        for chunks in [1usize, 16, 1024] {
            let size = body.len().div_ceil(chunks);
            group.bench_function(format!("{name}/{chunks}_chunks"), |b| {
                b.iter(|| {
                    let mut w = Wrapper::new(&callback, Wrap::Plain, 200);
                    let mut n = 0;
                    let parts: Vec<&[u8]> = body.chunks(size).collect();
                    for (i, part) in parts.iter().enumerate() {
                        n += w
                            .feed(Some(part), i + 1 == parts.len())
                            .map_or(0, |b| b.len());
                    }
                    black_box(n)
                })
            });
        }
    }
    group.finish();
}

fn config_compile(c: &mut Criterion) {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
            .unwrap();
    let path = Path::new("config.example.yaml");
    c.bench_function("config_compile_example", |b| {
        b.iter(|| {
            let config = parse_yaml(path, black_box(&example)).unwrap();
            black_box(
                compile(&Loaded {
                    path: path.into(),
                    source: example.clone(),
                    config,
                })
                .unwrap(),
            )
        })
    });
}

criterion_group!(benches, route_matching, cors, jsonp_wrapper, config_compile);
criterion_main!(benches);
