import Hummingbird
import TwinflowCodec

extension Router {
    /// `GET /healthz` (the process answers) and `GET /readyz` (every readiness check passes: 200,
    /// otherwise 503), both with a small JSON body. `/readyz` names each check with its status and
    /// detail, and lists the failing ones under `failing`.
    @discardableResult
    public func addHealthRoutes(readiness: Readiness) -> Self {
        get("healthz") { _, _ in
            Response.json(["status": "ok"], status: .ok)
        }
        get("readyz") { _, _ in
            let checks = readiness.evaluate()
            var detail: [String: JSONValue] = [:]
            var failing: [JSONValue] = []
            for (name, status) in checks {
                detail[name] = ["ready": .bool(status.ready), "detail": .string(status.detail)]
                if !status.ready { failing.append(.string(name)) }
            }
            let ready = failing.isEmpty
            return Response.json(
                ["status": ready ? "ready" : "not ready", "failing": .array(failing), "checks": .object(detail)],
                status: ready ? .ok : .serviceUnavailable
            )
        }
        return self
    }
}

extension Response {
    /// A JSON response.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized()))
        )
    }
}
