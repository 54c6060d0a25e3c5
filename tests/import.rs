//! `crossgate import`: each fixture (written from ingress-nginx's and the Gateway API's own
//! documentation) is converted with its Services pointed at real backends, crossgate runs the
//! result, and a real client checks that preflights and actual requests are answered the way
//! the source says. Then the real binary: usage, exit codes, and `crossgate check` on its output.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use common::{client, header, Backend, Proxy};
use crossgate::import::{import, Imported, Options, Source};
use reqwest::{Method, Response};

const DIR: &str = "tests/fixtures/import";

fn source(name: &str) -> Source {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(DIR)
        .join(name);
    Source {
        name: PathBuf::from(DIR).join(name),
        text: std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

/// The config `--listen` gives, replaced by the test proxy's address when it starts.
const LISTEN: &str = "127.0.0.1:1";

fn convert(name: &str, upstreams: &[(&str, SocketAddr)]) -> Result<Imported, String> {
    let options = Options {
        listen: LISTEN.into(),
        upstreams: upstreams
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect(),
        ..Options::default()
    };
    import(&[source(name)], &options).map_err(|e| e.to_string())
}

/// crossgate on the converted config (compiled for real: the servers are the backends).
async fn run(imported: &Imported) -> Proxy {
    let listen = format!("  - '{LISTEN}'\n");
    assert!(imported.yaml.contains(&listen), "{}", imported.yaml);
    Proxy::start(&imported.yaml.replace(&listen, "  - LISTEN\n")).await
}

async fn get(p: &Proxy, host: &str, path: &str, origin: Option<&str>) -> Response {
    let mut req = client().get(p.url(path)).header("host", host);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

async fn preflight(
    p: &Proxy,
    host: &str,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> Response {
    let mut req = client()
        .request(Method::OPTIONS, p.url(path))
        .header("host", host)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        req = req.header("access-control-request-headers", headers);
    }
    req.send().await.unwrap()
}

/// A 200 from `backend` that the page on `origin` may read.
fn readable(r: &Response, backend: &str, acao: &str) {
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(header(r, "x-backend"), Some(backend), "{r:?}");
    assert_eq!(
        header(r, "access-control-allow-origin"),
        Some(acao),
        "{r:?}"
    );
}

/// Served by the backend, but without CORS headers: the browser hides it from the page.
fn unreadable(r: &Response) {
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(header(r, "access-control-allow-origin"), None, "{r:?}");
}

fn allowed_preflight(r: &Response, max_age: &str) {
    assert_eq!(r.status(), 204, "{r:?}");
    assert!(header(r, "access-control-allow-origin").is_some(), "{r:?}");
    assert_eq!(header(r, "access-control-max-age"), Some(max_age), "{r:?}");
}

fn refused_preflight(r: &Response) {
    assert_eq!(r.status(), 403, "{r:?}");
    assert_eq!(header(r, "access-control-allow-origin"), None, "{r:?}");
}

#[tokio::test]
async fn ingress_nginx_defaults_become_any_origin_without_credentials_and_a_two_hour_preflight_cache(
) {
    let catalog = Backend::start("catalog").await;
    let images = Backend::start("images").await;
    let imported = convert(
        "ingress-nginx-defaults.yaml",
        &[
            ("shop-catalog-api-8080", catalog.addr),
            ("shop-images-8081", images.addr),
        ],
    )
    .unwrap();
    assert!(
        imported.report.contains("browsers refuse that answer"),
        "{}",
        imported.report
    );
    assert!(
        imported.report.contains("cors-max-age 1728000"),
        "{}",
        imported.report
    );
    let p = run(&imported).await;
    let host = "catalog.example.com";
    let anyone = "https://anyone.example";

    let r = get(&p, host, "/api/items", Some(anyone)).await;
    readable(&r, "catalog", "*");
    assert_eq!(header(&r, "access-control-allow-credentials"), None);

    let r = preflight(
        &p,
        host,
        "/api/items/1",
        anyone,
        "PUT",
        "content-type, authorization",
    )
    .await;
    allowed_preflight(&r, "7200");
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    allowed_preflight(
        &preflight(&p, host, "/api", anyone, "PATCH", "range").await,
        "7200",
    );
    // Not among ingress-nginx's default request headers.
    refused_preflight(&preflight(&p, host, "/api", anyone, "PUT", "x-custom").await);
    assert!(
        catalog
            .requests()
            .iter()
            .all(|s| s.method != Method::OPTIONS),
        "preflights never reach the backend"
    );

    // A Prefix takes whole segments (both halves), the Exact path only itself.
    readable(&get(&p, host, "/api", Some(anyone)).await, "catalog", "*");
    assert_eq!(get(&p, host, "/apix", Some(anyone)).await.status(), 404);
    readable(
        &get(&p, host, "/healthz", Some(anyone)).await,
        "catalog",
        "*",
    );
    assert_eq!(get(&p, host, "/healthz/x", None).await.status(), 404);
    // The named port `http`, resolved by the Service in the same file.
    readable(
        &get(&p, "images.example.com", "/a.png", Some(anyone)).await,
        "images",
        "*",
    );
}

#[tokio::test]
async fn odd_spellings_of_the_ingress_nginx_annotations_are_read_as_their_authors_meant() {
    let api = Backend::start("api").await;
    let admin = Backend::start("admin").await;
    let reports = Backend::start("reports").await;
    let assets = Backend::start("static").await;
    let imported = convert(
        "ingress-nginx-lists.yaml",
        &[
            ("shop-shop-api-8080", api.addr),
            ("shop-shop-admin-8080", admin.addr),
            ("shop-reports-80", reports.addr),
            ("shop-static-80", assets.addr),
        ],
    )
    .unwrap();
    for said in [
        "refuses this value as a whole",
        "refuses this spelling",
        "ingress-nginx sends put as written",
        "spec.tls",
        "proxy-body-size",
        "exposed nothing",
    ] {
        assert!(
            imported.report.contains(said),
            "{said}: {}",
            imported.report
        );
    }
    let p = run(&imported).await;
    let host = "api.example.com";
    let shop = "https://shop.example.com";

    // "True", "TRUE", spaces, a trailing comma: the list as written, with credentials.
    let r = get(&p, host, "/v1/orders", Some(shop)).await;
    readable(&r, "api", shop);
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    // `*` among expose-headers is literal to browsers once credentials are allowed: left out.
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-request-id")
    );
    readable(
        &get(&p, host, "/v1", Some("http://localhost:3000")).await,
        "api",
        "http://localhost:3000",
    );

    // `put` in lower case: meant as PUT, and allowed now.
    let r = preflight(
        &p,
        host,
        "/v1/orders/7",
        shop,
        "PUT",
        "content-type, x-requested-with",
    )
    .await;
    allowed_preflight(&r, "600");
    refused_preflight(&preflight(&p, host, "/v1/orders/7", shop, "PATCH", "").await);
    refused_preflight(&preflight(&p, host, "/v1/orders/7", shop, "PUT", "x-custom").await);

    // ingress-nginx's `*.` is one label, and the port is part of the origin.
    let one = "https://eu.example.net:8443";
    readable(&get(&p, host, "/v1/x", Some(one)).await, "api", one);
    unreadable(&get(&p, host, "/v1/x", Some("https://a.eu.example.net:8443")).await);
    unreadable(&get(&p, host, "/v1/x", Some("https://eu.example.net")).await);

    let evil = "https://evil.example";
    unreadable(&get(&p, host, "/v1/x", Some(evil)).await);
    refused_preflight(&preflight(&p, host, "/v1/x", evil, "PUT", "").await);

    // Longest prefix first; whole segments only.
    readable(
        &get(&p, host, "/v1/admin/users", Some(shop)).await,
        "admin",
        shop,
    );
    readable(&get(&p, host, "/v1/admin", Some(shop)).await, "admin", shop);
    readable(
        &get(&p, host, "/v1/administrators", Some(shop)).await,
        "api",
        shop,
    );
    assert_eq!(get(&p, host, "/v1x", Some(shop)).await.status(), 404);

    // An origin with a path and a capital scheme: their intent, without credentials.
    let host = "reports.example.com";
    for o in ["https://reports.example.com", "https://admin.example.com"] {
        let r = get(&p, host, "/dashboard", Some(o)).await;
        readable(&r, "reports", o);
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
    }
    let admin_page = "https://admin.example.com";
    allowed_preflight(
        &preflight(&p, host, "/x", admin_page, "POST", "content-type").await,
        "7200",
    );
    refused_preflight(&preflight(&p, host, "/x", admin_page, "DELETE", "").await);

    // CORS annotations without enable-cors: CORS stays the backend's, preflights reach it.
    let host = "static.example.com";
    unreadable(&get(&p, host, "/app.js", Some(shop)).await);
    let r = preflight(&p, host, "/app.js", shop, "PUT", "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "backend options");
}

#[tokio::test]
async fn a_kind_list_with_use_regex_makes_every_path_of_its_host_a_case_insensitive_regex() {
    let api = Backend::start("apps-api").await;
    let assets = Backend::start("assets").await;
    let fallback = Backend::start("fallback").await;
    let imported = convert(
        "ingress-nginx-list-kind.yaml",
        &[
            ("apps-apps-api-9000", api.addr),
            ("apps-assets-80", assets.addr),
            ("apps-fallback-80", fallback.addr),
        ],
    )
    .unwrap();
    for said in [
        "1 Deployment",
        "port \"web\": 9000",
        "matches deeper names too",
    ] {
        assert!(
            imported.report.contains(said),
            "{said}: {}",
            imported.report
        );
    }
    let p = run(&imported).await;
    let anyone = "https://anyone.example";

    let r = get(&p, "eu.apps.example.com", "/API/V2/users", Some(anyone)).await;
    readable(&r, "apps-api", "*");
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    allowed_preflight(
        &preflight(&p, "eu.apps.example.com", "/api/v1/x", anyone, "PATCH", "").await,
        "300",
    );
    refused_preflight(&preflight(&p, "eu.apps.example.com", "/api/v1/x", anyone, "PUT", "").await);
    // The other Ingress's Prefix /assets on the same host is a regex too (prefix, any case),
    // and has no CORS.
    let r = get(&p, "eu.apps.example.com", "/ASSETS/app.js", Some(anyone)).await;
    assert_eq!(header(&r, "x-backend"), Some("assets"));
    unreadable(&r);
    // The other paths of that Ingress's host: its default backend (ingress-nginx makes it the
    // root location of the server its rules create)...
    let r = get(&p, "eu.apps.example.com", "/x", None).await;
    assert_eq!(header(&r, "x-backend"), Some("fallback"));
    // ...and not of other hosts: nothing serves them (ingress-nginx's own default backend
    // answers 404 there; so does crossgate).
    let r = get(&p, "other.example.com", "/x", None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-backend"), None);
}

#[tokio::test]
async fn an_httproute_cors_filter_answers_as_the_gateway_api_says() {
    let storefront = Backend::start("storefront").await;
    let cdn = Backend::start("cdn").await;
    let imported = convert(
        "httproute-cors.yaml",
        &[
            ("shop-storefront-8080", storefront.addr),
            ("shop-cdn-80", cdn.addr),
        ],
    )
    .unwrap();
    assert!(
        imported.report.contains("also matches on headers"),
        "{}",
        imported.report
    );
    let p = run(&imported).await;
    let host = "api.example.com";
    let app = "https://app.example.com";

    let r = get(&p, host, "/v2/items", Some(app)).await;
    readable(&r, "storefront", app);
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-trace-id")
    );
    // The Gateway API's `*.` takes any number of labels; the bare domain is not under it.
    let deep = "https://a.b.example.com";
    readable(
        &get(&p, host, "/v2/items", Some(deep)).await,
        "storefront",
        deep,
    );
    unreadable(&get(&p, host, "/v2/items", Some("https://example.com")).await);

    let r = preflight(
        &p,
        host,
        "/v2/items/1",
        app,
        "PUT",
        "x-request-id, content-type",
    )
    .await;
    allowed_preflight(&r, "600");
    refused_preflight(&preflight(&p, host, "/v2/items/1", app, "PATCH", "").await);
    refused_preflight(&preflight(&p, host, "/v2/items/1", "https://evil.example", "PUT", "").await);

    // PathPrefix /v2/ ignores its trailing slash and takes whole elements; Exact is exact.
    readable(&get(&p, host, "/v2", Some(app)).await, "storefront", app);
    assert_eq!(get(&p, host, "/v2x", Some(app)).await.status(), 404);
    readable(
        &get(&p, host, "/status", Some(app)).await,
        "storefront",
        app,
    );
    assert_eq!(get(&p, host, "/status/1", Some(app)).await.status(), 404);
    // The wildcard hostname.
    readable(
        &get(&p, "eu.api.example.com", "/v2/items", Some(app)).await,
        "storefront",
        app,
    );
    // A rule without the filter leaves CORS to the backend.
    unreadable(&get(&p, host, "/public/x", Some(app)).await);
    assert_eq!(
        preflight(&p, host, "/public/x", app, "PUT", "")
            .await
            .status(),
        200
    );

    // Defaults: GET, HEAD and POST only, no request headers, no credentials, maxAge 5.
    let host = "cdn.example.com";
    let www = "https://www.example.com";
    let r = get(&p, host, "/logo.svg", Some(www)).await;
    readable(&r, "cdn", www);
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    allowed_preflight(&preflight(&p, host, "/upload", www, "POST", "").await, "5");
    refused_preflight(&preflight(&p, host, "/upload", www, "PUT", "").await);
    refused_preflight(&preflight(&p, host, "/upload", www, "POST", "content-type").await);
}

#[tokio::test]
async fn gateway_api_wildcards_become_any_origin_without_credentials_and_echoed_headers() {
    let data = Backend::start("open-data").await;
    let tools = Backend::start("dev-tools").await;
    let canary = Backend::start("canary").await;
    let imported = convert(
        "httproute-wildcards.yaml",
        &[
            ("default-open-data-8080", data.addr),
            ("default-dev-tools-80", tools.addr),
            ("default-dev-tools-canary-80", canary.addr),
        ],
    )
    .unwrap();
    for said in ["act as the signed-in user", "PROPFIND", "weights [3, 1]"] {
        assert!(
            imported.report.contains(said),
            "{said}: {}",
            imported.report
        );
    }
    let p = run(&imported).await;
    let host = "data.example.org";
    let anyone = "https://anyone.example";

    let r = get(&p, host, "/datasets", Some(anyone)).await;
    readable(&r, "open-data", "*");
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    assert_eq!(header(&r, "access-control-expose-headers"), Some("*"));
    let r = preflight(
        &p,
        host,
        "/datasets/1",
        anyone,
        "PATCH",
        "x-anything, authorization",
    )
    .await;
    allowed_preflight(&r, "7200");
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("x-anything, authorization")
    );
    refused_preflight(&preflight(&p, host, "/datasets/1", anyone, "PROPFIND", "").await);

    // `https://*`: every https origin; `http://*:3000`: every http origin on port 3000.
    let host = "dev.example.org";
    for o in ["https://anything.test", "http://localhost:3000"] {
        let r = get(&p, host, "/tools", Some(o)).await;
        assert_eq!(header(&r, "access-control-allow-origin"), Some(o), "{r:?}");
    }
    for o in [
        "http://anything.test",
        "http://localhost:8080",
        "https://anything.test:8443",
    ] {
        assert_eq!(
            header(
                &get(&p, host, "/tools/x", Some(o)).await,
                "access-control-allow-origin"
            ),
            None,
            "{o}"
        );
    }
    // Both backends of the rule take requests (evenly: the weights are not converted).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(&p, host, "/tools/x", None).await;
        seen.insert(header(&r, "x-backend").unwrap_or("").to_owned());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn an_invalid_ingress_annotation_is_an_error_naming_file_line_object_and_fix() {
    let e = convert("ingress-nginx-invalid.yaml", &[]).unwrap_err();
    assert!(
        e.starts_with("tests/fixtures/import/ingress-nginx-invalid.yaml:9:46: at metadata.annotations[\"nginx.ingress.kubernetes.io/enable-cors\"] of Ingress shop/legacy: enable-cors \"yes\" is not a boolean"),
        "{e}"
    );
    assert!(e.contains("\n  fix: write \"true\" or \"false\""), "{e}");
}

#[test]
fn a_star_beside_other_origins_in_an_httproute_is_refused_as_the_api_server_would() {
    let e = convert("httproute-invalid.yaml", &[]).unwrap_err();
    assert!(
        e.starts_with("tests/fixtures/import/httproute-invalid.yaml:16:17: at spec.rules[0].filters[0].cors.allowOrigins[1] of HTTPRoute shop/broken: allowOrigins has `*` beside other values"),
        "{e}"
    );
    assert!(e.contains("fix: write allowOrigins: [\"*\"] alone"), "{e}");
}

fn inline(yaml: &str, options: &Options) -> Result<Imported, String> {
    let source = Source {
        name: "inline.yaml".into(),
        text: yaml.into(),
    };
    import(&[source], options).map_err(|e| e.to_string())
}

const ONE_INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  rules:
    - host: web.example.com
      http:
        paths:
          - path: /
            pathType: PATH_TYPE
            backend:
              service:
                name: web
                port: PORT
";

#[test]
fn a_path_type_in_the_wrong_case_is_an_error_that_gives_the_spelling() {
    let yaml = ONE_INGRESS
        .replace("PATH_TYPE", "prefix")
        .replace("PORT", "{number: 80}");
    let e = inline(&yaml, &Options::default()).unwrap_err();
    assert!(
        e.starts_with("inline.yaml:12:23: at spec.rules[0].http.paths[0].pathType of Ingress shop/web: unknown pathType \"prefix\" (did you mean Prefix?)"),
        "{e}"
    );
}

#[test]
fn a_typo_in_a_cors_filter_is_an_error_with_the_closest_field() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
    - filters:
        - type: CORS
          cors:
            allowOrigin: [https://app.example.com]
      backendRefs: [{name: r, port: 80}]
";
    let e = inline(yaml, &Options::default()).unwrap_err();
    assert!(
        e.starts_with("inline.yaml:9:13: at spec.rules[0].filters[0].cors.allowOrigin of HTTPRoute default/r: unknown field `allowOrigin`; did you mean `allowOrigins`?"),
        "{e}"
    );
}

#[test]
fn a_named_port_without_its_service_is_resolved_only_by_an_upstream_flag() {
    let yaml = ONE_INGRESS
        .replace("PATH_TYPE", "Prefix")
        .replace("PORT", "{name: http}");
    let e = inline(&yaml, &Options::default()).unwrap_err();
    assert!(e.contains("nothing to import"), "{e}");
    assert!(e.contains("--upstream shop-web-http=HOST:PORT"), "{e}");

    let options = Options {
        upstreams: vec![("shop-web-http".into(), "10.1.2.3:8080".into())],
        ..Options::default()
    };
    let imported = inline(&yaml, &options).unwrap();
    assert_eq!(
        imported.upstreams.get("shop-web-http"),
        Some(&vec!["10.1.2.3:8080".to_owned()])
    );
    let e = inline(
        &yaml,
        &Options {
            upstreams: vec![("shop-wbe-http".into(), "10.1.2.3:8080".into())],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("no upstream named \"shop-wbe-http\""), "{e}");
    assert!(e.contains("shop-web-http"), "{e}");
}

#[test]
fn without_overrides_upstreams_are_the_services_cluster_names() {
    let imported = convert("ingress-nginx-defaults.yaml", &[]).unwrap();
    assert_eq!(
        imported.upstreams.get("shop-catalog-api-8080"),
        Some(&vec!["catalog-api.shop.svc.cluster.local:8080".to_owned()])
    );
    let options = Options {
        service_domain: "cluster.internal".into(),
        ..Options::default()
    };
    let imported = import(&[source("ingress-nginx-defaults.yaml")], &options).unwrap();
    assert_eq!(
        imported.upstreams.get("shop-images-8081"),
        Some(&vec!["images.shop.cluster.internal:8081".to_owned()])
    );
    assert!(imported.report.contains("crossgate run follows in DNS"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossgate"))
}

#[test]
fn the_import_command_writes_a_config_that_crossgate_check_accepts_and_exits_by_outcome() {
    let dir = std::env::temp_dir().join(format!("crossgate-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = |name: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(DIR)
            .join(name)
    };

    // No file: clap's usage, exit 2.
    let out = bin().arg("import").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: crossgate import"), "{stderr}");

    // A conversion: the config to -o, the report to --report, exit 0.
    let (config, report) = (dir.join("crossgate.yaml"), dir.join("report.txt"));
    let mut cmd = bin();
    cmd.arg("import")
        .arg(fixture("ingress-nginx-lists.yaml"))
        .arg("-o")
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .args(["--listen", "127.0.0.1:18080"]);
    for name in [
        "shop-shop-api-8080",
        "shop-shop-admin-8080",
        "shop-reports-80",
        "shop-static-80",
    ] {
        cmd.args(["--upstream", &format!("{name}=127.0.0.1:9")]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report_text = std::fs::read_to_string(&report).unwrap();
    assert!(report_text.contains("Changes meaning"), "{report_text}");

    // `crossgate check` accepts what it wrote.
    let out = bin()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");

    // Without -o and --report: the config on stdout, the report on stderr.
    let out = bin()
        .arg("import")
        .arg(fixture("httproute-cors.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("# crossgate config written by `crossgate import`"));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("crossgate import: read 2 HTTPRoute"));

    // Invalid input: exit 1, the error with its line, and nothing written.
    let nothing = dir.join("nothing.yaml");
    let out = bin()
        .arg("import")
        .arg(fixture("ingress-nginx-invalid.yaml"))
        .arg("-o")
        .arg(&nothing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ingress-nginx-invalid.yaml:9:46: at metadata.annotations"),
        "{stderr}"
    );
    assert!(stderr.contains("fix: "), "{stderr}");
    assert!(!nothing.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The migration fixture with its documents in the given order (by index).
fn migration(order: &[usize]) -> Source {
    let whole = source("ingress-nginx-migration.yaml");
    let docs: Vec<&str> = whole.text.split("\n---\n").collect();
    Source {
        name: whole.name,
        text: order
            .iter()
            .map(|&i| docs[i])
            .collect::<Vec<_>>()
            .join("\n---\n"),
    }
}

#[tokio::test]
async fn canaries_default_backends_and_classes_route_as_ingress_nginx_serves_them() {
    // (The canary's and the traefik Ingress's Services are not routed to: no backends.)
    let names = ["orders", "a-api", "a-fallback", "fallback"];
    let mut backends = Vec::new();
    for n in names {
        backends.push((n, Backend::start(n).await));
    }
    let options = Options {
        listen: LISTEN.into(),
        upstreams: backends
            .iter()
            .map(|(n, b)| (format!("shop-{n}-80"), b.addr.to_string()))
            .collect(),
        ..Options::default()
    };
    // The canary first (as kubectl lists it, by name), then last: the same result.
    for order in [[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]] {
        let imported = import(&[migration(&order)], &options).unwrap();
        let report = &imported.report;
        let exact = &report[..report.find("Changes meaning").unwrap_or(report.len())];
        assert!(!exact.contains("orders-canary"), "{report}");
        assert!(
            report.contains(
                "canary Ingress: ingress-nginx sends a share of the main Ingress's traffic here"
            ),
            "{report}"
        );
        assert!(
            report.contains("proxy-read-timeout \"120\" -> read_timeout: 120s"),
            "{report}"
        );
        assert!(
            report.contains("ingress class \"traefik\": only Ingresses of the class \"nginx\""),
            "{report}"
        );
        assert!(
            imported.yaml.contains("read_timeout: 120s"),
            "{}",
            imported.yaml
        );
        assert!(
            imported.not_exact > 0,
            "the canary is not converted: --strict fails"
        );
        let p = run(&imported).await;
        let app = "https://app.shop.example";
        // The primary Ingress takes the path, with its credentialed policy.
        let r = get(&p, "orders.shop.example", "/v1/items", Some(app)).await;
        readable(&r, "orders", app);
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        // team-a's defaultBackend serves its own host's other paths only.
        let r = get(&p, "a.shop.example", "/api/x", None).await;
        assert_eq!(header(&r, "x-backend"), Some("a-api"));
        let r = get(&p, "a.shop.example", "/other", None).await;
        assert_eq!(header(&r, "x-backend"), Some("a-fallback"));
        // Other hosts, and the traefik Ingress's (ingress-nginx does not serve it), go to the
        // cluster's catch-all.
        for host in ["b.shop.example", "orders.shop.example", "t.shop.example"] {
            let r = get(&p, host, "/elsewhere", None).await;
            assert_eq!(header(&r, "x-backend"), Some("fallback"), "{host}");
        }
    }
}

#[test]
fn strict_fails_the_import_when_anything_is_not_converted_exactly() {
    let dir = std::env::temp_dir().join(format!("crossgate-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(DIR)
        .join("ingress-nginx-migration.yaml");
    let config = dir.join("out.yaml");
    let out = bin()
        .arg("import")
        .arg(&fixture)
        .arg("--strict")
        .arg("-o")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: --strict: "), "{stderr}");
    assert!(
        stderr.contains("Not converted"),
        "the report is written: {stderr}"
    );
    assert!(config.exists(), "the config is written for review");
    // Without --strict the same input exits 0.
    let out = bin().arg("import").arg(&fixture).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // An input that converts exactly passes --strict.
    let exact = dir.join("exact.yaml");
    std::fs::write(
        &exact,
        ONE_INGRESS
            .replace("PATH_TYPE", "Prefix")
            .replace("PORT", "{number: 80}"),
    )
    .unwrap();
    let out = bin()
        .arg("import")
        .arg(&exact)
        .arg("--strict")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --ingress-class picks the other controller's Ingresses instead.
    let out = bin()
        .arg("import")
        .arg(&fixture)
        .args(["--ingress-class", "traefik"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("t.shop.example") && !yaml.contains("orders.shop.example"),
        "{yaml}"
    );
}

/// The self-check replays every host and path of the input through crossgate's dispatcher on
/// the config written: on inputs that convert exactly it finds nothing; where crossgate would
/// route a request elsewhere than the source (a path of a rule it could not convert, a
/// wildcard host two labels deep) it says so, and --strict counts it.
#[test]
fn the_self_check_replays_the_inputs_hosts_and_paths_and_lists_what_routes_otherwise() {
    for exact in [
        "ingress-nginx-migration.yaml",
        "httproute-cors.yaml",
        "ingress-nginx-lists.yaml",
    ] {
        let imported = import(&[source(exact)], &Options::default()).unwrap();
        let check = imported
            .report
            .split("\nSelf-check: ")
            .nth(1)
            .unwrap_or_else(|| panic!("no self-check in {}", imported.report));
        assert!(
            check.contains("every one is routed as the source routes it"),
            "{exact}: {check}"
        );
    }

    // Two Ingresses on one host: one with a prefix-stripping rewrite-target (converted with
    // strip_prefix, but P itself is not that route's), one plain; a rewrite crossgate cannot
    // make (not converted); and a wildcard host.
    let yaml = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$2}
spec:
  rules:
    - host: api.example.com
      http:
        paths:
          - {path: /v1(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: v1, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /new/$1}
spec:
  rules:
    - host: legacy.example.com
      http:
        paths:
          - {path: /old/(.*), pathType: ImplementationSpecific, backend: {service: {name: legacy, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: plain
  namespace: shop
spec:
  rules:
    - host: api.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
    - host: '*.apps.example.com'
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: apps, port: {number: 80}}}}
";
    let imported = inline(yaml, &Options::default()).unwrap();
    let check = imported.report.split("\nSelf-check: ").nth(1).unwrap();
    // `/v1` is the rewrite rule's in the source (sent upstream as /); crossgate's prefix /v1/
    // does not take it, the host's `/` does.
    assert!(
        check.contains("GET http://api.example.com/v1: the source sends it to shop-v1-80 (no CORS) by inline.yaml:"),
        "{check}"
    );
    assert!(
        check.contains("crossgate routes it to shop-web-80"),
        "{check}"
    );
    // What strip_prefix serves routes as the source: /v1/selfcheck is not listed.
    assert!(!check.contains("GET http://api.example.com/v1/"), "{check}");
    // A rewrite crossgate cannot make: the source serves it, crossgate does not.
    assert!(
        check.contains("GET http://legacy.example.com/old/: the source serves it by inline.yaml:"),
        "{check}"
    );
    assert!(
        check.contains("(not converted); crossgate routes it nowhere (404)"),
        "{check}"
    );
    // ingress-nginx's `*.` is one label deep.
    assert!(
        check.contains("GET http://a.selfcheck.apps.example.com/: the source has no rule for it"),
        "{check}"
    );
    assert!(
        !check.contains("GET http://selfcheck.apps.example.com/"),
        "{check}"
    );
    let differences = check.lines().filter(|l| l.starts_with("  - GET ")).count();
    assert!(differences >= 3, "{check}");
    assert!(imported.not_exact >= differences, "--strict counts them");
}

/// ingress-nginx's usual rewrite-target forms take a prefix off the path: converted as
/// strip_prefix routes, run for real; what changes (case, the bare prefix) is reported.
#[tokio::test]
async fn prefix_stripping_rewrite_targets_become_strip_prefix_routes() {
    let backend = Backend::start("api").await;
    let yaml = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$2}
spec:
  rules:
    - host: api.example.com
      http:
        paths:
          - {path: /orders(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: users
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$1}
spec:
  rules:
    - host: users.example.com
      http:
        paths:
          - {path: /people/(.*), pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
          - {path: /v1.0/(.*), pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
";
    let options = Options {
        listen: LISTEN.into(),
        upstreams: vec![("shop-api-80".into(), backend.addr.to_string())],
        ..Options::default()
    };
    let imported = inline(yaml, &options).unwrap();
    assert!(
        imported.yaml.contains("path: /orders/\n"),
        "{}",
        imported.yaml
    );
    assert!(
        imported.yaml.contains("strip_prefix: true"),
        "{}",
        imported.yaml
    );
    let report = &imported.report;
    assert!(
        report.contains("-> route ingress-shop-api-0-0: prefix /orders/ with strip_prefix"),
        "{report}"
    );
    assert!(
        report.contains("case-insensitively (/ORDERS/x too)"),
        "{report}"
    );
    assert!(
        report.contains(
            "and /orders itself, which ingress-nginx sends upstream as /, is not this route's"
        ),
        "{report}"
    );
    // `.` is any character to nginx: not a literal prefix, not converted.
    assert!(
        report.contains(
            "path /v1.0/(.*) with rewrite-target \"/$1\": crossgate forwards the path it routed"
        ),
        "{report}"
    );
    assert!(imported.not_exact >= 3, "--strict fails on it: {report}");

    let proxy = run(&imported).await;
    for (host, path, upstream) in [
        ("api.example.com", "/orders/42", "/42"),
        ("api.example.com", "/orders/", "/"),
        ("users.example.com", "/people/ann", "/ann"),
    ] {
        let r = get(&proxy, host, path, None).await;
        assert_eq!(r.status(), 200, "{host}{path}");
        backend.wait_for(1, |s| s.path == upstream).await;
    }
    let r = get(&proxy, "users.example.com", "/v1.0/x", None).await;
    assert_eq!(
        r.status(),
        404,
        "the path that was not converted has no route"
    );
}

/// The inputs, each on its own, through the real binary with --strict: exit 1 where
/// the conversion is not exact, exit 0 with a clean self-check where it is.
#[test]
fn strict_exits_1_on_each_input_that_cannot_be_converted_exactly_and_0_with_a_clean_self_check_otherwise(
) {
    let ingress = |name: &str, annotations: &str, spec: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{annotations}}}\nspec:\n{spec}")
    };
    let rules = |host: &str, path: &str, svc: &str| {
        format!("  rules:\n    - host: {host}\n      http:\n        paths:\n          - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n")
    };
    let default = "  defaultBackend: {service: {name: fallback, port: {number: 80}}}\n";
    let main = ingress("orders", "", &rules("orders.example", "/v1", "orders"));
    let canary = ingress(
        "orders-canary",
        "nginx.ingress.kubernetes.io/canary: 'true', nginx.ingress.kubernetes.io/canary-weight: '10'",
        &rules("orders.example", "/v1", "orders-next"),
    );
    let traefik = format!(
        "{}  ingressClassName: traefik\n",
        ingress("t", "", &rules("t.example", "/", "t"))
    );
    let method = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  rules:\n    - matches: [{path: {value: /write}, method: POST}]\n      backendRefs: [{name: a, port: 80}]\n    - matches: [{path: {value: /read}}]\n      backendRefs: [{name: a, port: 80}]\n".to_owned();
    let rewrite = ingress(
        "rw",
        "nginx.ingress.kubernetes.io/rewrite-target: /$2",
        "  rules:\n    - host: rw.example\n      http:\n        paths:\n          - {path: /api(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: rw, port: {number: 80}}}}\n",
    );
    let timeout = ingress(
        "slow",
        "nginx.ingress.kubernetes.io/proxy-read-timeout: '120'",
        &rules("slow.example", "/reports", "slow"),
    );
    let cases: Vec<(&str, String, i32)> = vec![
        ("a canary", format!("{main}---\n{canary}"), 1),
        ("a method match", method, 1),
        ("a rewrite-target", rewrite, 1),
        (
            "a defaultBackend with rules",
            ingress(
                "d",
                "",
                &format!("{}{default}", rules("d.example", "/api", "api")),
            ),
            0,
        ),
        (
            "a defaultBackend without rules",
            ingress("all", "", default),
            0,
        ),
        (
            "another class beside nginx's",
            format!("{main}---\n{traefik}"),
            0,
        ),
        ("a read timeout", timeout, 0),
    ];
    let dir = std::env::temp_dir().join(format!("crossgate-strict-each-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (what, yaml, want)) in cases.into_iter().enumerate() {
        let input = dir.join(format!("{i}.yaml"));
        std::fs::write(&input, &yaml).unwrap();
        let report = dir.join(format!("{i}.txt"));
        let out = bin()
            .arg("import")
            .arg(&input)
            .arg("--strict")
            .arg("-o")
            .arg(dir.join(format!("{i}-out.yaml")))
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap();
        let report = std::fs::read_to_string(&report).unwrap_or_default();
        assert_eq!(
            out.status.code(),
            Some(want),
            "{what}: {}\n{report}",
            String::from_utf8_lossy(&out.stderr)
        );
        if want == 0 {
            assert!(
                report.contains("every one is routed as the source routes it"),
                "{what}: {report}"
            );
        }
    }
}
