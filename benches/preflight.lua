-- wrk: a CORS preflight from the allowed origin.
wrk.method = "OPTIONS"
wrk.headers["Origin"] = "http://bench.example"
wrk.headers["Access-Control-Request-Method"] = "PUT"
wrk.headers["Access-Control-Request-Headers"] = "content-type"
