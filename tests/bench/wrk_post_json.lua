-- wrk script: POSTs the same small JSON body bench_http sends to its /echo route.
--   bench_http --serve 8099 &
--   wrk -t2 -c8 -d10s -s tests/bench/wrk_post_json.lua http://127.0.0.1:8099/echo
wrk.method = "POST"
wrk.body = '{"seq":1,"op":"ping","path":"/some/dir/file.txt"}'
wrk.headers["Content-Type"] = "application/json"
