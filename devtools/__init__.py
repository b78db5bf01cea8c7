"""What the tests and the benchmarks share: throwaway databases and dbt runs on them
(databases), the project's paths and the bundled sample (project, sample), a NATS JetStream
server (nats), the API as a child process (api_server), free ports and percentiles.

Development only: no production package (loader, api, report, stream, scripts) imports it.
"""
