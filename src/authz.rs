//! Who may call what: the role permissions of PRODUCT.md section 3, enforced on every RPC, deny by default.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use passerelle_model::AgencyId;
use passerelle_pki::{Identity, Role};
use tonic::Status;

use crate::admin::PeerControls;
use crate::limits::{Limited, PeerLimits};

/// What the TLS layer learnt about the caller; tonic puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub identity: Arc<Identity>,
    pub remote: SocketAddr,
}

/// The kind of access an RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health and reflection: any authenticated client.
    Any,
    /// Get and List of records.
    Read,
    /// Put, Withdraw and Import of own records.
    Write,
    Analytics,
    Admin,
    Federation,
    /// Anything else: refused.
    Unknown,
}

/// Classifies a gRPC path (`/passerelle.v1.Vacancies/Put`).
pub fn classify(path: &str) -> Access {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (Some(service), Some(method)) = (parts.next(), parts.next()) else {
        return Access::Unknown;
    };
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Access::Any,
        "passerelle.v1.Vacancies" | "passerelle.v1.Shortages" | "passerelle.v1.Supply" => {
            match method {
                "Get" | "List" => Access::Read,
                "Put" | "Withdraw" | "Import" => Access::Write,
                _ => Access::Unknown,
            }
        }
        "passerelle.v1.Analytics" => Access::Analytics,
        "passerelle.v1.Admin" => Access::Admin,
        "passerelle.v1.Federation" => Access::Federation,
        _ => Access::Unknown,
    }
}

/// The node's access rules; peers and partner analysts come from `node.toml`.
#[derive(Debug)]
pub struct Policy {
    own: AgencyId,
    peers: RwLock<HashSet<AgencyId>>,
    partner_analysts: RwLock<HashSet<AgencyId>>,
    /// Agencies an operator blocked: every call of theirs is refused, whatever the role.
    controls: Arc<PeerControls>,
}

impl Policy {
    pub fn new(
        own: AgencyId,
        peers: impl IntoIterator<Item = AgencyId>,
        partner_analysts: impl IntoIterator<Item = AgencyId>,
    ) -> Self {
        Policy {
            own,
            peers: RwLock::new(peers.into_iter().collect()),
            partner_analysts: RwLock::new(partner_analysts.into_iter().collect()),
            controls: Arc::default(),
        }
    }

    /// Refuses the agencies these controls block.
    pub fn with_controls(mut self, controls: Arc<PeerControls>) -> Self {
        self.controls = controls;
        self
    }

    /// Ok when `who` may make a call needing `access`, else why not.
    pub fn check(&self, who: &Identity, access: Access) -> Result<(), String> {
        let own = who.agency == self.own;
        if !own && self.controls.is_blocked(&who.agency) {
            return Err(format!("{} is blocked on this node", who.agency));
        }
        let ok = match (access, who.role) {
            (Access::Any, _) => true,
            (Access::Unknown, _) => false,
            (Access::Federation, Role::Node) => {
                !own && self.peers.read().expect("lock").contains(&who.agency)
            }
            (Access::Federation, _) => false,
            (Access::Write, Role::Publisher) => own,
            (Access::Read, Role::Publisher | Role::Analyst | Role::Operator) => {
                own || (who.role == Role::Analyst && self.partner_analyst(&who.agency))
            }
            (Access::Analytics, Role::Analyst) => own || self.partner_analyst(&who.agency),
            (Access::Analytics, Role::Operator) => own,
            (Access::Admin, Role::Operator) => own,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} may not call {:?} services on this node",
                who.uri(),
                access
            ))
        }
    }

    /// Whether `agency` is this node's own.
    pub fn is_own(&self, agency: &AgencyId) -> bool {
        *agency == self.own
    }

    fn partner_analyst(&self, agency: &AgencyId) -> bool {
        self.partner_analysts.read().expect("lock").contains(agency)
    }
}

/// Tower layer that refuses calls the caller's identity may not make, holds partners to their
/// limits, and puts a deadline on every call that is not a client stream.
#[derive(Clone)]
pub struct AuthzLayer {
    policy: Arc<Policy>,
    limits: Arc<PeerLimits>,
    deadline: Duration,
}

impl AuthzLayer {
    pub fn new(policy: Arc<Policy>, limits: Arc<PeerLimits>, deadline: Duration) -> Self {
        AuthzLayer {
            policy,
            limits,
            deadline,
        }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            policy: self.policy.clone(),
            limits: self.limits.clone(),
            deadline: self.deadline,
        }
    }
}

#[derive(Clone)]
pub struct Authz<S> {
    inner: S,
    policy: Arc<Policy>,
    limits: Arc<PeerLimits>,
    deadline: Duration,
}

/// Client-streaming calls (Import) last as long as the client sends: no deadline on those.
fn has_deadline(path: &str) -> bool {
    !path.ends_with("/Import")
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authz<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let access = classify(req.uri().path());
        let mut partner = None;
        let verdict = match req.extensions().get::<PeerInfo>() {
            None => Err(Status::unauthenticated("no client certificate identity")),
            Some(peer) => self
                .policy
                .check(&peer.identity, access)
                .map_err(|why| {
                    tracing::warn!(
                        caller = %peer.identity.uri(),
                        remote = %peer.remote,
                        path = req.uri().path(),
                        "call refused"
                    );
                    Status::permission_denied(why)
                })
                .and_then(|()| {
                    let agency = &peer.identity.agency;
                    if self.policy.is_own(agency) {
                        return Ok(());
                    }
                    partner = Some(agency.clone());
                    self.limits.admit_call(agency).inspect_err(|_| {
                        tracing::warn!(
                            caller = %peer.identity.uri(),
                            remote = %peer.remote,
                            path = req.uri().path(),
                            "call refused: rate limit"
                        );
                    })
                }),
        };
        match verdict {
            Ok(()) => {
                let deadline = has_deadline(req.uri().path()).then_some(self.deadline);
                let path = req.uri().path().to_owned();
                let limits = self.limits.clone();
                // the clone that was polled ready must serve this call
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let call = inner.call(req);
                Box::pin(async move {
                    let mut response = match deadline {
                        None => call.await?,
                        Some(d) => match tokio::time::timeout(d, call).await {
                            Ok(r) => r?,
                            Err(_) => {
                                tracing::warn!(%path, deadline_secs = d.as_secs_f64(), "call ran past its deadline");
                                if let Some(agency) = &partner {
                                    limits.count(agency, Limited::Deadline);
                                }
                                let late = Status::deadline_exceeded(format!(
                                    "{path} ran past this node's deadline of {} s",
                                    d.as_secs_f64()
                                ));
                                return Ok(late.into_http());
                            }
                        },
                    };
                    oversize_is_resource_exhausted(&mut response);
                    Ok(response)
                })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE; the contract (and gRPC's own
/// guidance) says RESOURCE_EXHAUSTED, so the status is corrected here, in one place.
fn oversize_is_resource_exhausted<B>(response: &mut http::Response<B>) {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        // the header is percent-encoded: spaces arrive as %20
        .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        Identity::parse_uri(s).unwrap()
    }

    #[test]
    fn roles_are_enforced() {
        let p = Policy::new(
            "tg.anpe".parse().unwrap(),
            ["be.vdab".parse().unwrap()],
            ["fr.francetravail".parse().unwrap()],
        );
        let publisher = id("urn:passerelle:tg.anpe:publisher:import");
        let analyst = id("urn:passerelle:tg.anpe:analyst:a1");
        let operator = id("urn:passerelle:tg.anpe:operator:ops");
        let partner_node = id("urn:passerelle:be.vdab:node:n1");
        let stranger_node = id("urn:passerelle:ma.anapec:node:n1");
        let partner_publisher = id("urn:passerelle:be.vdab:publisher:p");
        let partner_analyst = id("urn:passerelle:fr.francetravail:analyst:x");
        let put = classify("/passerelle.v1.Vacancies/Put");
        let get = classify("/passerelle.v1.Supply/Get");
        assert!(p.check(&publisher, put).is_ok());
        assert!(p.check(&analyst, put).is_err());
        assert!(p.check(&operator, put).is_err());
        assert!(p.check(&partner_publisher, put).is_err());
        assert!(p.check(&analyst, get).is_ok());
        assert!(p.check(&partner_node, get).is_err());
        assert!(p
            .check(&partner_node, classify("/passerelle.v1.Federation/Pull"))
            .is_ok());
        assert!(p
            .check(&stranger_node, classify("/passerelle.v1.Federation/Pull"))
            .is_err());
        assert!(p
            .check(&analyst, classify("/passerelle.v1.Analytics/SupplyGap"))
            .is_ok());
        assert!(p
            .check(&publisher, classify("/passerelle.v1.Analytics/SupplyGap"))
            .is_err());
        assert!(p
            .check(
                &partner_analyst,
                classify("/passerelle.v1.Analytics/SupplyGap")
            )
            .is_ok());
        assert!(p
            .check(&operator, classify("/passerelle.v1.Admin/Status"))
            .is_ok());
        assert!(p
            .check(&analyst, classify("/passerelle.v1.Admin/Status"))
            .is_err());
        assert!(p
            .check(&partner_node, classify("/grpc.health.v1.Health/Check"))
            .is_ok());
        assert!(p
            .check(&operator, classify("/passerelle.v1.Vacancies/Delete"))
            .is_err());
        assert!(p.check(&operator, classify("/other.Service/X")).is_err());
    }

    #[test]
    fn a_blocked_agency_is_refused_whatever_the_role() {
        let controls = Arc::new(PeerControls::default());
        let p = Policy::new(
            "tg.anpe".parse().unwrap(),
            ["be.vdab".parse().unwrap()],
            ["be.vdab".parse().unwrap()],
        )
        .with_controls(controls.clone());
        let node = id("urn:passerelle:be.vdab:node:n1");
        let analyst = id("urn:passerelle:be.vdab:analyst:a");
        let pull = classify("/passerelle.v1.Federation/Pull");
        let gap = classify("/passerelle.v1.Analytics/SupplyGap");
        let health = classify("/grpc.health.v1.Health/Check");
        assert!(p.check(&node, pull).is_ok());
        assert!(p.check(&analyst, gap).is_ok());
        let store = passerelle_store::RecordStore::open(passerelle_store::AnyEngine::from(
            passerelle_store::MemEngine::new(),
        ))
        .unwrap();
        controls.block(&store, &"be.vdab".parse().unwrap()).unwrap();
        for (who, access) in [(&node, pull), (&analyst, gap), (&node, health)] {
            let why = p.check(who, access).unwrap_err();
            assert!(why.contains("blocked"), "{why}");
        }
        // own identities are never blocked
        let operator = id("urn:passerelle:tg.anpe:operator:ops");
        assert!(p
            .check(&operator, classify("/passerelle.v1.Admin/Status"))
            .is_ok());
        controls
            .unblock(&store, &"be.vdab".parse().unwrap())
            .unwrap();
        assert!(p.check(&node, pull).is_ok());
    }

    fn status_of(r: &http::Response<tonic::body::Body>) -> Option<String> {
        r.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_ends_with_deadline_exceeded_but_an_import_goes_on() {
        use tower::{Layer, Service, ServiceExt};
        let policy = Arc::new(Policy::new(
            "tg.anpe".parse().unwrap(),
            ["be.vdab".parse().unwrap()],
            [],
        ));
        let limits = PeerLimits::new(100, 4);
        let layer = AuthzLayer::new(policy, limits.clone(), Duration::from_millis(50));
        let slow = tower::service_fn(|_req: http::Request<()>| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let mut svc = layer.layer(slow);
        let call = |path: &str, who: &str| {
            let mut req = http::Request::builder().uri(path).body(()).unwrap();
            req.extensions_mut().insert(PeerInfo {
                identity: Arc::new(id(who)),
                remote: "127.0.0.1:1".parse().unwrap(),
            });
            req
        };
        let operator = "urn:passerelle:tg.anpe:operator:ops";
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(call("/passerelle.v1.Admin/Status", operator))
            .await
            .unwrap();
        assert_eq!(status_of(&r).as_deref(), Some("4"), "DEADLINE_EXCEEDED");
        let publisher = "urn:passerelle:tg.anpe:publisher:p";
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(call("/passerelle.v1.Vacancies/Import", publisher))
            .await
            .unwrap();
        assert_eq!(status_of(&r), None, "an import is not cut");
        // a partner's late call is counted against it
        let partner = "urn:passerelle:be.vdab:node:n1";
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(call("/passerelle.v1.Federation/Hello", partner))
            .await
            .unwrap();
        assert_eq!(status_of(&r).as_deref(), Some("4"));
        assert_eq!(
            limits.refused()[&("be.vdab".parse().unwrap(), Limited::Deadline)],
            1
        );
    }
}
