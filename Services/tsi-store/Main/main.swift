import TsiStore
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// tsi-store: time-series events from `eventhub.tsi` (group `tsi-store`) stored in batches with
/// per-minute rollups in `$TWINFLOW_DATA_DIR/timeseries.sqlite`; Time Series Insights Gen2's
/// query API (`POST /timeseries/query`, `GET /timeseries/instances`), health, readiness and
/// `/metrics` on HTTP_PORT (8084).
await ServiceRunner.run(name: "tsi-store", defaultHTTPPort: 8084) { context in
    try TsiStoreService.services(environment: context.environment, logger: context.logger, readiness: context.readiness, router: context.router)
}
