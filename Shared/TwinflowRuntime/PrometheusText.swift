/// Counters in Prometheus' text format, as every service's `GET /metrics` serves them.
public enum PrometheusText {
    /// `# TYPE twinflow_<service>_<name>_total counter` and the value, for each row.
    public static func counters(service: String, _ rows: [(name: String, value: Int)]) -> String {
        rows.map { "# TYPE twinflow_\(service)_\($0.name)_total counter\ntwinflow_\(service)_\($0.name)_total \($0.value)\n" }.joined()
    }
}
