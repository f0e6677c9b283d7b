// A real OpenID provider for usersvc's token tests: oidc-provider (a certified
// implementation) issuing RFC 9068 JWT access tokens to clients by the client
// credentials grant, for the resource `urn:usersvc` whose audience is `usersvc`.
//
//   node provider.mjs <port>      prints "listening <issuer>" once it serves
//
// Clients (secret = id + "-secret"): "usersvc-tests" may ask for any usersvc scope,
// "reader" for users:read only.
import Provider from "oidc-provider";

const port = Number(process.argv[2] || 0);
const issuer = `http://127.0.0.1:${port}`;
const SCOPES = "users:read users:list users:write users:erase";

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "usersvc-tests",
      client_secret: "usersvc-tests-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: SCOPES,
    },
    {
      client_id: "reader",
      client_secret: "reader-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: "users:read",
    },
  ],
  scopes: SCOPES.split(" "),
  // Swagger UI asks for tokens from the service's page: a browser sends that request
  // only when the provider allows the page's origin (a deployer's setting for the docs;
  // here any page served from this machine).
  clientBasedCORS: (ctx, origin) => URL.parse(origin)?.hostname === "127.0.0.1",
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:usersvc",
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        audience: "usersvc",
        scope: SCOPES,
        accessTokenTTL: 600,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
});

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`listening ${issuer}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
