//! One ACME order, from `newOrder` to the certificate chain (RFC 8555 §7.4).

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType as AcmeChallenge,
    Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use portcullis_config::model::ChallengeType;
use rcgen::KeyPair;

use crate::challenge::{tls_alpn01_certificate, ChallengeResponder};
use crate::dns::solver::{Dns01, Presented};
use crate::error::problem_text;
use crate::material::{csr_der, generate_key};
use crate::Error;

/// How often order state is polled: start fast (a local CA answers in
/// milliseconds), back off to be polite to a public one.
pub(crate) fn retry_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(25))
        .backoff(1.6)
        .timeout(Duration::from_secs(90))
}

/// A certificate fresh from the CA.
pub(crate) struct Issued {
    pub(crate) chain_pem: String,
    pub(crate) key: KeyPair,
}

/// Challenges this order published; withdrawn when dropped, so they are
/// removed whether the order succeeds, fails, or its task is cancelled.
struct Published<'a> {
    responder: &'a dyn ChallengeResponder,
    http01: Vec<String>,
    tls_alpn01: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for token in &self.http01 {
            self.responder.remove_http01(token);
        }
        for name in &self.tls_alpn01 {
            self.responder.remove_tls_alpn01(name);
        }
    }
}

/// Runs an order for `names` with `challenge`, answering HTTP-01 and
/// TLS-ALPN-01 through `responder` and DNS-01 through `dns`.
pub(crate) async fn run(
    account: &Account,
    names: &[String],
    challenge: ChallengeType,
    profile: Option<&str>,
    replaces: Option<CertificateIdentifier<'_>>,
    responder: &dyn ChallengeResponder,
    dns: Option<&Dns01>,
) -> Result<Issued, Error> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(profile) = profile {
        new_order = new_order.profile(profile);
    }
    if let Some(replaces) = replaces {
        // RFC 9773 §5: tell the CA which certificate this order renews.
        new_order = new_order.replaces(replaces);
    }
    let mut order = account.new_order(&new_order).await?;
    let mut published = Published {
        responder,
        http01: Vec::new(),
        tls_alpn01: Vec::new(),
    };
    let mut presented = Vec::new();
    let ready = authorize(&mut order, challenge, &mut published, dns, &mut presented).await;
    // The authorizations are over: withdraw every challenge, success or not.
    drop(published);
    if let Some(dns) = dns {
        dns.cleanup(presented).await;
    }
    if ready? != OrderStatus::Ready {
        return Err(Error::Acme(failed_authorization(&mut order).await));
    }
    let key = generate_key()?;
    order.finalize_csr(&csr_der(names, &key)?).await?;
    let chain_pem = order.poll_certificate(&retry_policy()).await?;
    Ok(Issued { chain_pem, key })
}

/// Publishes every challenge response, tells the CA, and waits for the order
/// to become ready (or invalid).
async fn authorize(
    order: &mut instant_acme::Order,
    challenge: ChallengeType,
    published: &mut Published<'_>,
    dns: Option<&Dns01>,
    presented: &mut Vec<Presented>,
) -> Result<OrderStatus, Error> {
    let wanted = match challenge {
        ChallengeType::Http01 => AcmeChallenge::Http01,
        ChallengeType::TlsAlpn01 => AcmeChallenge::TlsAlpn01,
        ChallengeType::Dns01 => AcmeChallenge::Dns01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            // Already proven (authorization reuse): nothing to publish.
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(Error::Acme(format!(
                    "authorization for {} is {other:?}",
                    authorization.identifier()
                )))
            }
        }
        let name = authorization.identifier().to_string();
        let Some(mut handle) = authorization.challenge(wanted.clone()) else {
            return Err(Error::Acme(format!(
                "the CA offers no {challenge} challenge for {name}"
            )));
        };
        let key_authorization = handle.key_authorization();
        // A challenge a previous process already set ready (before a
        // crash) must still be answered, but not be set ready twice.
        let needs_ready = handle.status == instant_acme::ChallengeStatus::Pending;
        // RFC 8555 §7.5.1: the response must be in place before the CA is told to check.
        match challenge {
            ChallengeType::Http01 => {
                published
                    .responder
                    .publish_http01(&handle.token, key_authorization.as_str());
                published.http01.push(handle.token.clone());
            }
            ChallengeType::TlsAlpn01 => {
                let (cert, key) = tls_alpn01_certificate(&name, key_authorization.as_str())?;
                published.responder.publish_tls_alpn01(&name, cert, key)?;
                published.tls_alpn01.push(name.clone());
            }
            ChallengeType::Dns01 => {
                let dns = dns.ok_or_else(|| Error::Acme("dns-01 needs a DNS credential".into()))?;
                presented.push(dns.present(&name, &key_authorization.dns_value()).await?);
                // Set ready only once every record is visible (below).
                continue;
            }
        }
        if needs_ready {
            handle.set_ready().await?;
        }
    }
    if let (ChallengeType::Dns01, Some(dns)) = (challenge, dns) {
        dns.wait(presented).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut handle) = authorization.challenge(AcmeChallenge::Dns01) {
                if handle.status == instant_acme::ChallengeStatus::Pending {
                    handle.set_ready().await?;
                }
            }
        }
    }
    Ok(order.poll_ready(&retry_policy()).await?)
}

/// The CA's own words for why an order became invalid.
async fn failed_authorization(order: &mut instant_acme::Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                return problem_text(problem);
            }
        }
    }
    "the order became invalid without a problem document".to_owned()
}
