//! OpenTelemetry: a CheckLimit call exports a `CheckLimit` span with a
//! `backend` child span (the OpenTelemetry SDK's in-memory exporter stands
//! in for the OTLP collector; the pipeline is otherwise the service's own).

use crate::support;

use opentelemetry_sdk::trace::{InMemorySpanExporterBuilder, SdkTracerProvider};
use ratelimitd_server::telemetry::{self, LogFormat};
use support::{check, request, TestServer};

#[tokio::test]
async fn a_check_limit_span_has_a_backend_child() {
    let exporter = InMemorySpanExporterBuilder::new().build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    telemetry::init("info", LogFormat::Text, Some(&provider));

    let server = TestServer::start(
        "rules: [{name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 5/m}]",
    )
    .await;
    let mut client = server.client().await;
    check(&mut client, &request("api", &[("tenant", "acme")])).await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let parent = spans
        .iter()
        .find(|span| span.name == "CheckLimit")
        .unwrap_or_else(|| panic!("no CheckLimit span in {spans:#?}"));
    let child = spans
        .iter()
        .find(|span| span.name == "backend")
        .unwrap_or_else(|| panic!("no backend span in {spans:#?}"));
    assert_eq!(child.parent_span_id, parent.span_context.span_id());
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id()
    );
    let attribute = |span: &opentelemetry_sdk::trace::SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attribute(parent, "domain").as_deref(), Some("api"));
    assert_eq!(attribute(child, "backend").as_deref(), Some("memory"));
    assert_eq!(attribute(child, "checks").as_deref(), Some("1"));
}

/// An OTLP receiver on loopback, keeping `(name, span id, parent span id)`
/// of every span and `(metric, attributes, value)` of every integer sum
/// point it is sent.
pub(crate) mod receiver {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
    use std::sync::{Arc, Mutex};
    use tonic::{Request, Response, Status};

    pub type Spans = Arc<Mutex<Vec<(String, Vec<u8>, Vec<u8>)>>>;
    pub type Sums = Arc<Mutex<Vec<(String, Vec<(String, String)>, i64)>>>;

    struct Receiver(Spans);
    struct MetricsReceiver(Sums);

    #[tonic::async_trait]
    impl MetricsService for MetricsReceiver {
        async fn export(
            &self,
            request: Request<ExportMetricsServiceRequest>,
        ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
            let mut sums = self.0.lock().unwrap();
            for resource in &request.get_ref().resource_metrics {
                for scope in &resource.scope_metrics {
                    for metric in &scope.metrics {
                        let Some(Data::Sum(sum)) = &metric.data else {
                            continue;
                        };
                        for point in &sum.data_points {
                            let Some(Number::AsInt(value)) = point.value else {
                                continue;
                            };
                            let attributes = point
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let value =
                                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                            Some(AnyValue::StringValue(text)) => text.clone(),
                                            other => format!("{other:?}"),
                                        };
                                    (kv.key.clone(), value)
                                })
                                .collect();
                            sums.push((metric.name.clone(), attributes, value));
                        }
                    }
                }
            }
            Ok(Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            request: Request<ExportTraceServiceRequest>,
        ) -> Result<Response<ExportTraceServiceResponse>, Status> {
            let mut spans = self.0.lock().unwrap();
            for resource in &request.get_ref().resource_spans {
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        spans.push((
                            span.name.clone(),
                            span.span_id.clone(),
                            span.parent_span_id.clone(),
                        ));
                    }
                }
            }
            Ok(Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Starts one; returns its address and what it received.
    pub async fn start() -> (std::net::SocketAddr, Spans, Sums) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (spans, sums) = (Spans::default(), Sums::default());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(spans.clone())))
                .add_service(MetricsServiceServer::new(MetricsReceiver(sums.clone())))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (addr, spans, sums)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_spans_and_metrics_over_otlp_when_the_environment_says_so() {
    let (addr, received, sums) = receiver::start().await;
    let endpoint = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_file(
        &dir,
        "policy.yaml",
        "rules: [{name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 5/m}]",
    );
    let mut process = support::ServeProcess::spawn_with_env(
        &["--config", &config],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ],
    );
    assert!(process.allowed("api", &[("tenant", "acme")]).await);
    // On SIGTERM the service drains and flushes the spans it holds.
    process.signal("TERM");
    let status = tokio::task::spawn_blocking(move || process.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let decisions: Vec<_> = sums
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _, _)| name == "ratelimitd.decisions")
        .cloned()
        .collect();
    let mut attributes = decisions
        .last()
        .expect("decisions exported at shutdown")
        .1
        .clone();
    attributes.sort();
    assert_eq!(
        (attributes, decisions.last().unwrap().2),
        (
            vec![
                ("api".into(), "policy".into()),
                ("domain".into(), "api".into()),
                ("outcome".into(), "allowed".into()),
                ("rule".into(), "tenants".into()),
            ],
            1
        )
    );
    let spans = received.lock().unwrap().clone();
    let parent = spans
        .iter()
        .find(|(name, _, _)| name == "CheckLimit")
        .unwrap_or_else(|| panic!("no CheckLimit span: {spans:?}"));
    assert!(
        spans
            .iter()
            .any(|(name, _, parent_id)| name == "backend" && *parent_id == parent.1),
        "no backend child of CheckLimit: {spans:?}"
    );
}
