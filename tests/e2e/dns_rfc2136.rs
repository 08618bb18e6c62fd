//! DNS-01 against a real DNS server: the `rfc2136` provider (DNS UPDATE with
//! TSIG) and the resolver (zone detection, CNAME following, propagation
//! check) against a private knotd; SERVFAIL from pebble-challtestsrv.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use portcullis_acme::dns::providers;
use portcullis_acme::dns::resolver::{
    LookupFailure, PropagationCheck, ResolveError, Resolver, Zone,
};
use portcullis_acme::dns::{DnsError, DnsProvider, Fields};

use crate::support::knot::Knot;
use crate::support::pebble::{free_port, Pebble, PebbleOptions};

/// Zone `test.`: one nameserver on 127.0.0.1, a tenant whose
/// `_acme-challenge` is delegated by a chain of two CNAMEs (knot follows
/// CNAMEs only inside one zone, so source and target share it), a loop, and
/// a chain longer than the resolver follows.
const TEST_ZONE: &str = "$ORIGIN test.
$TTL 60
@ SOA ns1.test. hostmaster.test. 1 3600 900 604800 60
@ NS ns1.test.
ns1 A 127.0.0.1
dead A 127.0.0.2
www A 127.0.0.1
_acme-challenge.shop CNAME _acme-challenge.hop.test.
_acme-challenge.hop CNAME tenant1.auth.test.
loop1 CNAME loop2.test.
loop2 CNAME loop1.test.
c0 CNAME c1.test.
c1 CNAME c2.test.
c2 CNAME c3.test.
c3 CNAME c4.test.
c4 CNAME c5.test.
c5 CNAME c6.test.
c6 CNAME c7.test.
c7 CNAME c8.test.
c8 CNAME c9.test.
c9 TXT \"end\"
";

/// Zone `lame.test.`: a second nameserver whose address (127.0.0.2) nobody
/// listens on.
const LAME_ZONE: &str = "$ORIGIN lame.test.
$TTL 60
@ SOA ns1.test. hostmaster.test. 1 3600 900 604800 60
@ NS ns1.test.
@ NS dead.test.
";

async fn knot() -> Knot {
    Knot::start(&[("test", TEST_ZONE), ("lame.test", LAME_ZONE)]).await
}

fn fields(knot: &Knot, secret: &str, extra: &[(&str, &str)]) -> Fields {
    let mut config = BTreeMap::from([
        ("server".to_owned(), knot.addr.to_string()),
        ("key_name".to_owned(), knot.key_name.clone()),
    ]);
    for (key, value) in extra {
        config.insert((*key).to_owned(), (*value).to_owned());
    }
    Fields {
        config,
        secrets: BTreeMap::from([("key_secret".to_owned(), secret.to_owned())]),
    }
}

fn provider(knot: &Knot, extra: &[(&str, &str)]) -> Box<dyn DnsProvider> {
    providers::build("rfc2136", &fields(knot, &knot.key_secret_base64, extra)).unwrap()
}

/// The same key name with another (valid base64) secret.
fn wrong_secret(knot: &Knot) -> String {
    let mut secret = knot.key_secret_base64.clone();
    let first = if secret.starts_with('A') { "B" } else { "A" };
    secret.replace_range(0..1, first);
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_presents_two_values_and_cleans_up_only_its_own() {
    let knot = knot().await;
    let dns = provider(&knot, &[]);
    assert_eq!(dns.name(), "rfc2136");
    let fqdn = "_acme-challenge.www.test";

    dns.present("test", fqdn, "value-apex").await.unwrap();
    dns.present("test", fqdn, "value-wildcard").await.unwrap();
    assert_eq!(knot.txt(fqdn).await, ["value-apex", "value-wildcard"]);
    // Presenting the same value again is harmless (RRsets hold no duplicates).
    dns.present("test.", "_acme-challenge.WWW.test.", "value-apex")
        .await
        .unwrap();
    assert_eq!(knot.txt(fqdn).await, ["value-apex", "value-wildcard"]);

    dns.cleanup("test", fqdn, "value-apex").await.unwrap();
    assert_eq!(knot.txt(fqdn).await, ["value-wildcard"]);
    // A value already gone is not an error.
    dns.cleanup("test", fqdn, "value-apex").await.unwrap();
    dns.cleanup("test", fqdn, "value-wildcard").await.unwrap();
    assert!(knot.txt(fqdn).await.is_empty());
    assert!(knot.logs().contains("DDNS, finished"), "{}", knot.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_over_udp_with_hmac_sha512() {
    let knot = Knot::start_with_algorithm(&[("test", TEST_ZONE)], "hmac-sha512").await;
    let dns = provider(
        &knot,
        &[
            ("algorithm", "hmac-sha512"),
            ("transport", "udp"),
            ("zones", "test"),
        ],
    );
    assert_eq!(dns.validate().await.unwrap(), ["test"]);
    dns.present("test", "_acme-challenge.test", "over-udp")
        .await
        .unwrap();
    assert_eq!(knot.txt("_acme-challenge.test").await, ["over-udp"]);
    dns.cleanup("test", "_acme-challenge.test", "over-udp")
        .await
        .unwrap();
    assert!(knot.txt("_acme-challenge.test").await.is_empty());

    // The server knows this key as hmac-sha512 only.
    let sha256 = provider(&knot, &[("zones", "test")]);
    let error = sha256.validate().await.unwrap_err();
    assert!(
        matches!(&error, DnsError::Auth { message, .. } if message.contains("BADKEY")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_validate_checks_the_key_and_each_zone() {
    let knot = knot().await;
    let dns = provider(&knot, &[("zones", "test, Lame.Test.")]);
    assert_eq!(dns.validate().await.unwrap(), ["test", "lame.test"]);

    // Wrong secret: knot answers NOTAUTH with TSIG error BADSIG.
    let wrong = providers::build(
        "rfc2136",
        &fields(&knot, &wrong_secret(&knot), &[("zones", "test")]),
    )
    .unwrap();
    for error in [
        wrong.validate().await.unwrap_err(),
        wrong
            .present("test", "_acme-challenge.www.test", "v")
            .await
            .unwrap_err(),
    ] {
        match &error {
            DnsError::Auth { message, .. } => {
                assert!(message.contains("BADSIG"), "{error}");
                assert!(!message.contains(&knot.key_secret_base64), "{error}");
            }
            other => panic!("expected Auth, got {other:?}"),
        }
    }
    assert!(knot.txt("_acme-challenge.www.test").await.is_empty());

    // A key knot knows but no ACL allows: BADKEY (knot's answer to an ACL
    // denial), caught by validate's prerequisite-only UPDATE.
    let mut denied = fields(&knot, &knot.denied_key_secret_base64, &[("zones", "test")]);
    denied
        .config
        .insert("key_name".into(), knot.denied_key_name.clone());
    let error = providers::build("rfc2136", &denied)
        .unwrap()
        .validate()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::Auth { message, .. } if message.contains("BADKEY") && message.contains("ACL")),
        "{error}"
    );

    // Zones knot does not serve, or a name that is not a zone apex.
    for zone in ["example.org", "www.test"] {
        let error = provider(&knot, &[("zones", zone)])
            .validate()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DnsError::ZoneNotFound { zone: z, .. } if z == zone),
            "{zone}: {error}"
        );
    }

    // Without `zones`, knot refuses the root query unsigned: nothing proves
    // the key, so validate asks for the zones.
    let error = provider(&knot, &[]).validate().await.unwrap_err();
    assert!(
        matches!(&error, DnsError::Config { field, message, .. } if field == "zones" && message.contains("REFUSED")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_names_outside_the_zone_and_cnames_are_refused() {
    let knot = knot().await;
    let dns = provider(&knot, &[]);

    // A zone knot does not serve: unsigned NOTAUTH.
    let error = dns
        .present("example.org", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::ZoneNotFound { zone, .. } if zone == "example.org"),
        "{error}"
    );
    // A served zone, a name outside it: NOTZONE.
    let error = dns
        .present("test", "_acme-challenge.www.example.org", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::Api { status: 10, message, .. } if message.contains("NOTZONE")),
        "{error}"
    );

    // Knot would accept a TXT next to a CNAME and silently drop it; the
    // no-CNAME prerequisite turns that into an error.
    let error = dns
        .present("test", "_acme-challenge.shop.test", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::Api { status: 7, message, .. } if message.contains("CNAME")),
        "{error}"
    );

    // Unreachable server: a transport error naming it.
    let closed = format!("127.0.0.1:{}", free_port());
    let mut unreachable = fields(&knot, &knot.key_secret_base64, &[]);
    unreachable.config.insert("server".into(), closed.clone());
    let error = providers::build("rfc2136", &unreachable)
        .unwrap()
        .present("test", "_acme-challenge.test", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::Transport { message, .. } if message.contains(&closed)),
        "{error}"
    );

    // Missing fields are refused when the credential is built.
    let mut missing = fields(&knot, &knot.key_secret_base64, &[]);
    missing.config.remove("key_name");
    assert!(matches!(
        providers::build("rfc2136", &missing),
        Err(DnsError::Config { field, .. }) if field == "key_name"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_finds_the_zone_and_its_nameservers() {
    let knot = knot().await;
    let resolver = Resolver::new(&[knot.addr]).unwrap();

    let zone = resolver
        .find_zone("_acme-challenge.a.b.www.TEST.")
        .await
        .unwrap();
    assert_eq!(
        zone,
        Zone {
            name: "test".into(),
            nameservers: vec![("ns1.test".into(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])],
        }
    );
    let lame = resolver
        .find_zone("_acme-challenge.x.lame.test")
        .await
        .unwrap();
    assert_eq!(lame.name, "lame.test");
    let mut hosts: Vec<_> = lame.nameservers.clone();
    hosts.sort();
    assert_eq!(
        hosts,
        [
            (
                "dead.test".to_owned(),
                vec!["127.0.0.2".parse::<IpAddr>().unwrap()]
            ),
            ("ns1.test".to_owned(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        ]
    );

    // Knot serves no parent of example.org: REFUSED ends the walk.
    let error = resolver.find_zone("www.example.org").await.unwrap_err();
    assert!(
        matches!(&error, ResolveError::ZoneNotFound { source: LookupFailure::Rcode { rcode, .. }, .. } if rcode == "REFUSED"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_follows_cname_chains() {
    let knot = knot().await;
    let resolver = Resolver::new(&[knot.addr]).unwrap();

    assert_eq!(
        resolver
            .resolve_cname_chain("_acme-challenge.shop.test")
            .await
            .unwrap(),
        "tenant1.auth.test"
    );
    assert_eq!(
        resolver
            .resolve_cname_chain("_acme-challenge.www.test")
            .await
            .unwrap(),
        "_acme-challenge.www.test"
    );
    // c0 -> c9 is 9 CNAMEs, one more than followed; c1 -> c9 is 8.
    assert_eq!(
        resolver.resolve_cname_chain("c1.test").await.unwrap(),
        "c9.test"
    );
    let error = resolver.resolve_cname_chain("c0.test").await.unwrap_err();
    assert!(
        matches!(&error, ResolveError::CnameChain { problem, .. } if problem.contains("longer than 8")),
        "{error}"
    );
    let error = resolver
        .resolve_cname_chain("loop1.test")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "CNAME chain from \"loop1.test\" loops: loop1.test -> loop2.test -> loop1.test"
    );

    // The chain's end is where the provider writes; the zone is the target's.
    let target = resolver
        .resolve_cname_chain("_acme-challenge.shop.test")
        .await
        .unwrap();
    let zone = resolver.find_zone(&target).await.unwrap();
    let dns = provider(&knot, &[]);
    dns.present(&zone.name, &target, "delegated").await.unwrap();
    assert_eq!(knot.txt("_acme-challenge.shop.test").await, ["delegated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_txt_sees_a_presented_value_and_reports_servers_that_do_not() {
    let knot = knot().await;
    let dns = provider(&knot, &[]);
    let resolver = Resolver::new(&[knot.addr]).unwrap();
    let fqdn = "_acme-challenge.www.test";
    let zone = resolver.find_zone(fqdn).await.unwrap();

    dns.present("test", fqdn, "other-order").await.unwrap();
    assert_eq!(
        resolver.txt_at(knot.addr, fqdn).await.unwrap(),
        ["other-order"]
    );
    assert!(resolver
        .txt_at(knot.addr, "_acme-challenge.nothing.test")
        .await
        .unwrap()
        .is_empty());

    // Not there yet: the timeout says who returned what.
    let started = Instant::now();
    let error = resolver
        .wait_for_txt(
            &zone,
            fqdn,
            "mine",
            Duration::from_millis(600),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.missing.len(), 1, "{error}");
    assert_eq!(error.missing[0].server, knot.addr);
    assert_eq!(error.missing[0].answer, Ok(vec!["other-order".to_owned()]));
    let message = error.to_string();
    assert!(
        message.contains(&format!("{} returned [\"other-order\"]", knot.addr)),
        "{message}"
    );

    // Presented while waiting: seen.
    let waiting = tokio::spawn({
        let (zone, addr) = (zone.clone(), knot.addr);
        async move {
            Resolver::new(&[addr])
                .unwrap()
                .wait_for_txt(
                    &zone,
                    fqdn,
                    "mine",
                    Duration::from_secs(10),
                    Duration::from_millis(50),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    dns.present("test", fqdn, "mine").await.unwrap();
    waiting.await.unwrap().unwrap();

    // Asking the zone's own nameservers (here on knot's port).
    let authoritative =
        Resolver::new(&[knot.addr])
            .unwrap()
            .with_propagation(PropagationCheck::Authoritative {
                port: knot.addr.port(),
            });
    authoritative
        .wait_for_txt(
            &zone,
            fqdn,
            "mine",
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .await
        .unwrap();

    // lame.test's second nameserver never answers: only it is reported.
    dns.present("lame.test", "_acme-challenge.lame.test", "mine")
        .await
        .unwrap();
    let lame = authoritative
        .find_zone("_acme-challenge.lame.test")
        .await
        .unwrap();
    let error = authoritative
        .wait_for_txt(
            &lame,
            "_acme-challenge.lame.test",
            "mine",
            Duration::from_millis(800),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert_eq!(error.missing.len(), 1, "{error}");
    assert_eq!(
        error.missing[0].server.ip(),
        "127.0.0.2".parse::<IpAddr>().unwrap()
    );
    assert_eq!(error.missing[0].host.as_deref(), Some("dead.test"));
    assert!(error.missing[0].answer.is_err(), "{error}");
    assert!(error.to_string().contains("(dead.test) failed"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_zone_reports_servfail_with_the_fix() {
    let pebble = Pebble::start(PebbleOptions::new(free_port(), free_port())).await;
    let dns = pebble.dns_addr.unwrap();
    let name = "_acme-challenge.broken.example.test";
    pebble.set_servfail(name).await;
    let resolver = Resolver::new(&[dns]).unwrap();
    let error = resolver.find_zone(name).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "could not find zone for domain \"{name}\": SERVFAIL from {dns}; set \
             acme.dns_resolvers (or PORTCULLIS_ACME_DNS_RESOLVERS) to resolvers that can see \
             the zone"
        )
    );
}
