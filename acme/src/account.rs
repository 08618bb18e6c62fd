//! ACME accounts: one per issuer and contact, created on first use and
//! reused across restarts (credentials sealed in the secret store).

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use portcullis_config::settings::acme::IssuerKind;
use portcullis_config::settings::IssuerSettings;
use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::http_client::AcmeHttp;
use crate::secrets::Secrets;
use crate::Error;

/// What the store shows about an account (its key is only in the secret store).
#[derive(Debug, Serialize)]
struct AccountRecord<'a> {
    issuer: &'a str,
    email: Option<&'a str>,
    account_url: &'a str,
    created_at: i64,
}

/// Accounts by issuer and contact, cached for the life of the process.
#[derive(Default)]
pub(crate) struct Accounts {
    cache: Mutex<HashMap<String, Arc<Account>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts(..)")
    }
}

fn cache_key(issuer: &str, email: Option<&str>) -> String {
    format!("{issuer}/{}", email.unwrap_or("-"))
}

impl Accounts {
    /// The account for `issuer` and `email`: cached, restored, or created.
    pub(crate) async fn get(
        &self,
        issuer: &IssuerSettings,
        email: Option<&str>,
        secrets: &Secrets,
        store: &dyn Store,
    ) -> Result<Arc<Account>, Error> {
        let IssuerKind::Acme {
            directory,
            ca_bundle,
            eab,
            ..
        } = &issuer.kind
        else {
            return Err(Error::Issuer {
                issuer: issuer.name.clone(),
                message: "not an ACME issuer".into(),
            });
        };
        let key = cache_key(&issuer.name, email);
        let mut cache = self.cache.lock().await;
        if let Some(account) = cache.get(&key) {
            return Ok(Arc::clone(account));
        }
        let label = format!("acme-account/{key}");
        let http = || AcmeHttp::new(&issuer.name, ca_bundle.as_deref()).map(Box::new);
        let account = match secrets.get(&label).await? {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_slice(&json)
                    .map_err(|e| Error::Secret(format!("{label}: not account credentials: {e}")))?;
                Account::builder_with_http(http()?)
                    .from_credentials(credentials)
                    .await?
            }
            None => {
                let contact = email.map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab_key = match eab {
                    Some(eab) => {
                        let hmac = URL_SAFE_NO_PAD
                            .decode(eab.hmac_key.trim_end_matches('='))
                            .map_err(|_| Error::Issuer {
                                issuer: issuer.name.clone(),
                                message: "eab_hmac_key is not base64url; paste it exactly as the CA gave it".into(),
                            })?;
                        Some(ExternalAccountKey::new(eab.kid.clone(), &hmac))
                    }
                    None => None,
                };
                let (account, credentials) = Account::builder_with_http(http()?)
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        eab_key.as_ref(),
                    )
                    .await?;
                let json = zeroize::Zeroizing::new(
                    serde_json::to_vec(&credentials).map_err(|e| Error::Secret(e.to_string()))?,
                );
                secrets.put(&label, &json).await?;
                let record = AccountRecord {
                    issuer: &issuer.name,
                    email,
                    account_url: account.id(),
                    created_at: crate::unix_now(),
                };
                store
                    .put(
                        space::ACCOUNTS,
                        &key,
                        serde_json::to_vec(&record).unwrap_or_default(),
                        Expect::Any,
                    )
                    .await?;
                tracing::info!(issuer = %issuer.name, account = %account.id(), "created ACME account");
                account
            }
        };
        let account = Arc::new(account);
        cache.insert(key, Arc::clone(&account));
        Ok(account)
    }

    /// Forgets an account the server no longer knows (e.g. a reset test CA),
    /// so the next use creates a new one.
    pub(crate) async fn forget(
        &self,
        issuer: &str,
        email: Option<&str>,
        secrets: &Secrets,
    ) -> Result<(), Error> {
        let key = cache_key(issuer, email);
        self.cache.lock().await.remove(&key);
        secrets.delete(&format!("acme-account/{key}")).await
    }
}
