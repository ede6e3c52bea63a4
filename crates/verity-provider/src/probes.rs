//! Answering auditors' liveness probes, and announcing where on the ledger.

use super::*;

/// `GET /metrics`: the worker's proving metrics.
fn metrics_route(
    metrics: std::sync::Arc<crate::metrics::ProviderMetrics>,
) -> axum::routing::MethodRouter {
    axum::routing::get(move || {
        let body = metrics.render();
        async move {
            (
                [("content-type", verity_client::routes::METRICS_CONTENT_TYPE)],
                body,
            )
        }
    })
}

impl Provider {
    /// Answers auditors' liveness probes on `listen`, and announces the endpoint on the
    /// ledger if it changed.
    pub(crate) async fn serve_probes(
        &self,
        listen: std::net::SocketAddr,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), verity_client::ClientError> {
        use axum::extract::Query;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| verity_client::ClientError::Protocol(format!("bind {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| verity_client::ClientError::Protocol(e.to_string()))?;
        let key = self.cfg.key.clone();
        let flaky = self.cfg.faults().flaky_endpoint();
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let app = axum::Router::new()
            .route(
                verity_client::routes::METRICS,
                metrics_route(self.metrics.clone()),
            )
            .route(
                verity_client::routes::PING,
                axum::routing::get(
                    move |Query(q): Query<std::collections::BTreeMap<String, String>>| {
                        let key = key.clone();
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        async move {
                            let nonce = q.get("nonce").cloned().unwrap_or_default();
                            if nonce.is_empty() || nonce.len() > 128 || (flaky && n % 2 == 1) {
                                return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                            }
                            let me = key.address();
                            let sig = key.sign(&verity_client::ping_message(&me, &nonce));
                            Ok(axum::Json(verity_client::PingAnswer {
                                provider: me,
                                signature: hex::encode(sig.0),
                            }))
                        }
                    },
                ),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.changed().await;
                })
                .await;
        });
        let endpoint = self
            .cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let me = self.cfg.key.address();
        let current = self.client.provider(&me).await?.profile.endpoint;
        if current.as_deref() != Some(endpoint.as_str()) {
            let tx = self
                .client
                .send(
                    &self.cfg.key,
                    TxBody::Announce {
                        endpoint: endpoint.clone(),
                    },
                )
                .await?;
            self.client.wait_tx(&tx, Duration::from_secs(30)).await?;
            info!(%endpoint, "announced the liveness endpoint");
        }
        Ok(())
    }
}
