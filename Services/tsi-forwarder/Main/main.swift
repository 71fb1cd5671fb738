import TsiForwarder
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// tsi-forwarder: twin telemetry from `eventhub.telemetry` (and, with `TSI_FORWARDER_TWIN_UPDATES=true`,
/// Twin.Update values from `eventgrid.twin-events`), group `tsi-forwarder`, into flattened
/// time-series events on `eventhub.tsi` keyed by `$dtId`; health, readiness and `/metrics` on
/// HTTP_PORT (8083).
await ServiceRunner.run(name: "tsi-forwarder", defaultHTTPPort: 8083) { context in
    try TsiForwarderService.services(environment: context.environment, logger: context.logger, readiness: context.readiness, router: context.router)
}
