import Propagator
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// propagator: twin change notifications from `eventgrid.twin-events` (group `propagator`) into
/// patches of the changed twins' parents on `twins.commands`, by the rules in `PROPAGATOR_RULES`
/// (the seed's rule without one); health, readiness and `/metrics` on HTTP_PORT (8082).
await ServiceRunner.run(name: "propagator", defaultHTTPPort: 8082) { context in
    try PropagatorService.services(environment: context.environment, logger: context.logger, readiness: context.readiness, router: context.router)
}
