"""Schemathesis hooks for the admin API fuzz run (tests/e2e/openapi.rs).

The fuzzer holds the admin token and really acts. Two of its moves would
end the run's usefulness or leave the machine, so they are redirected:

* Certificates and expose plans never name a Let's Encrypt issuer (named,
  or the expose default): issuance goes to the internal CA, so no request
  is made to a public CA. Only string and null values are replaced, so a
  request that is invalid for another reason stays invalid.
* `DELETE /api/v1/tokens/admin` would revoke the token the fuzzer itself
  uses, and every later request would answer 401; it is pointed at a
  token that does not exist instead.
"""

import schemathesis

SAFE_ISSUER = "internal-ca"
OWN_TOKEN = "admin"


def _is_public_issuer(value):
    return value is None or (isinstance(value, str) and value.startswith("letsencrypt"))


@schemathesis.hook
def before_call(context, case, **kwargs):
    method = case.operation.method.upper()
    path = case.operation.path
    body = case.body
    if method == "POST" and isinstance(body, dict):
        if path == "/api/v1/ingress/expose" and _is_public_issuer(body.get("tls_issuer")):
            body["tls_issuer"] = SAFE_ISSUER
        elif path == "/api/v1/acme/certificates" and "issuer" in body:
            if _is_public_issuer(body["issuer"]):
                body["issuer"] = SAFE_ISSUER
    if method == "DELETE" and path == "/api/v1/tokens/{name}":
        if (case.path_parameters or {}).get("name") == OWN_TOKEN:
            case.path_parameters["name"] = OWN_TOKEN + "-not-this-one"
