import Ingress
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// ingress: IoT Hub device messages from `iothub.d2c` (group `ingress`) into twin commands on
/// `twins.commands`, by the mapping in `INGRESS_MAPPING` (ADT's sample without one); health,
/// readiness and `/metrics` on HTTP_PORT (8081).
await ServiceRunner.run(name: "ingress", defaultHTTPPort: 8081) { context in
    try IngressService.services(environment: context.environment, logger: context.logger, readiness: context.readiness, router: context.router)
}
