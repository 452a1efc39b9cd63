// Generated from rules/config.schema.json by test/tools/gen-types.mjs. Do not edit.

/**
 * One alert destination, chosen by type.
 */
export type Sink = (Sink1 & Sink2)
export type Sink1 = (WebhookSink | EmailSink | PrometheusSink | AlertmanagerSink)

/**
 * The portwarden agent's configuration (portwarden watch): what to check, how often, and where alerts go.
 */
export interface AgentConfig {
/**
 * Path of the policy file.
 */
policy?: string
/**
 * Directory for state.json, events.jsonl, the alert spool and apply's records.
 */
state_dir?: string
/**
 * When to scan, in node-cron syntax (an optional seconds field first).
 */
schedule?: string
/**
 * Consecutive scans a finding must be seen before it opens, and absent before it resolves.
 */
settle?: number
/**
 * Remind about findings still open after this long (e.g. 24h, 30m, 90s, 7d); 0 or "0" = never.
 */
repeat?: (0 | string)
/**
 * Also read the live firewall each cycle and compare who can actually reach each port with the policy (findings firewall-gap, blocked-service, published-container-port, mixed-firewall), as portwarden check does.
 */
exposure?: boolean
/**
 * How often to connect to the services whose policy rule has expect (TLS, certificate, SMTP checks), e.g. 1h, 30m; between checks the last results stand.
 */
service_interval?: string
/**
 * Watch this network namespace (/run/netns/NAME) instead of the host's own.
 */
netns?: string
/**
 * Where alerts go, besides the log on stdout.
 */
sinks?: Sink[]
/**
 * Most undelivered batches kept per sink; older ones are dropped with a "dropped N events" alert.
 */
spool_limit?: number
/**
 * Who knocks: each cycle the agent samples what portwarden's applied rules counted (refused and rate-limited new connections per source and port) into the state dir, exports the counts as metrics and raises attempt-surge and port-scan; false turns it off.
 */
attempts?: (false | Attempts)
}
/**
 * POSTs batches of events as JSON, signed per the Standard Webhooks spec.
 */
export interface WebhookSink {
/**
 * Sink type.
 */
type: "webhook"
/**
 * Name in logs and metrics (default: webhook-N).
 */
name?: string
/**
 * http:// or https:// URL to POST to, without credentials (user:pass@ is refused: it would show in logs); tokens in the path or query are redacted in logs.
 */
url: string
/**
 * File holding the signing secret (whsec_<base64>); owned by root and not readable by group or others, not empty.
 */
secret_file?: string
/**
 * Environment variable holding the signing secret (whsec_<base64>).
 */
secret_env?: string
/**
 * standard: portwarden.alert JSON with Standard Webhooks signature; slack: a Slack-compatible {"text"} message.
 */
format?: ("standard" | "slack")
/**
 * Seconds to wait for the receiver's complete response (headers and body), at most 600.
 */
timeout?: number
}
/**
 * Sends one plain-text message per batch over SMTP.
 */
export interface EmailSink {
/**
 * Sink type.
 */
type: "email"
/**
 * Name in logs and metrics (default: email-N).
 */
name?: string
/**
 * SMTP server host: a name, an IPv4 address or an IPv6 address, without spaces.
 */
host: string
/**
 * SMTP server port (default 25, 465 with tls: implicit).
 */
port?: number
/**
 * starttls: upgrade with STARTTLS (required); implicit: TLS from the start; none: plain text.
 */
tls?: ("starttls" | "implicit" | "none")
/**
 * Sender address.
 */
from: string
/**
 * Recipient addresses.
 * 
 * @minItems 1
 */
to: [string, ...(string)[]]
/**
 * SMTP user name, when the server wants authentication.
 */
user?: string
/**
 * File holding the SMTP password; owned by root and not readable by group or others, not empty.
 */
password_file?: string
/**
 * Environment variable holding the SMTP password.
 */
password_env?: string
/**
 * Seconds to wait for the server, at most 600.
 */
timeout?: number
}
/**
 * Metrics for Prometheus: a node_exporter textfile, and optionally a /metrics endpoint.
 */
export interface PrometheusSink {
/**
 * Sink type.
 */
type: "prometheus"
/**
 * Name in logs and metrics (default: prometheus-N).
 */
name?: string
/**
 * Path of the .prom file for node_exporter's textfile collector, written atomically each cycle.
 */
textfile?: string
/**
 * host:port to serve /metrics on, port 0-65535 (0: any free port); keep it on loopback unless it must be scraped from elsewhere.
 */
listen?: string
}
/**
 * Posts each open finding as an alert to every Alertmanager instance (/api/v2/alerts), re-posted every resend while open and once more with endsAt when it resolves.
 */
export interface AlertmanagerSink {
/**
 * Sink type.
 */
type: "alertmanager"
/**
 * Name in logs and metrics (default: alertmanager-N); each URL is delivered as NAME#1, NAME#2, ... with its own spool and retries.
 */
name?: string
/**
 * Base URL of every Alertmanager instance (http://am-1:9093), all posted to, as Prometheus does for an HA pair; without credentials.
 * 
 * @minItems 1
 */
urls: [string, ...(string)[]]
/**
 * File holding a bearer token sent as Authorization: Bearer; owned by root and not readable by group or others, not empty.
 */
bearer_token_file?: string
/**
 * HTTP basic authentication (not with bearer_token_file).
 */
basic_auth?: {
/**
 * User name.
 */
user: string
/**
 * File holding the password; owned by root and not readable by group or others, not empty.
 */
password_file: string
}
/**
 * Re-post the open findings this often (like 30s, 1m, 5m); each alert's endsAt is four resends ahead, so Alertmanager resolves them by itself if the agent stops.
 */
resend?: string
/**
 * Seconds to wait for each instance's complete response, at most 600.
 */
timeout?: number
}
export interface Sink2 {
/**
 * webhook, email, prometheus or alertmanager.
 */
type: ("webhook" | "email" | "prometheus" | "alertmanager")
}
/**
 * Thresholds of the attempt-surge and port-scan events.
 */
export interface Attempts {
/**
 * The window both events look at (e.g. 5m, 90s, 1h).
 */
window?: string
/**
 * attempt-surge opens when one rule refused or rate-limited more new connections than this within the window.
 */
threshold?: number
/**
 * port-scan opens when one source touched more distinct ports than this within the window.
 */
scan_ports?: number
/**
 * How many sources an attempt-surge message names.
 */
top?: number
}
