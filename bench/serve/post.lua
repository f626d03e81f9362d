-- wrk script: POST one request body (docs/BENCHMARKS.md, serving section).
-- Usage: wrk -t1 -c32 -d10s --latency -s bench/serve/post.lua http://127.0.0.1:18081/v1/pipelines/cheap/predict
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": 606}'
