import Hummingbird
import TwinflowCodec

extension Router {
    /// `GET /healthz` (the process answers) and `GET /readyz` (every readiness check passes:
    /// 200, otherwise 503), both with a small JSON body.
    @discardableResult
    public func addHealthRoutes(readiness: Readiness) -> Self {
        get("healthz") { _, _ in
            Response.json(["status": "ok"], status: .ok)
        }
        get("readyz") { _, _ in
            let checks = readiness.evaluate()
            let ready = checks.allSatisfy(\.ready)
            var detail: [String: JSONValue] = [:]
            for check in checks { detail[check.name] = .bool(check.ready) }
            return Response.json(["status": ready ? "ready" : "not ready", "checks": .object(detail)], status: ready ? .ok : .serviceUnavailable)
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
