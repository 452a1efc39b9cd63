// Generated from rules/policy.schema.json by test/tools/gen-types.mjs. Do not edit.

/**
 * A list of IPv4/IPv6 addresses, CIDR prefixes or group names.
 */
export type SourceList = string[]
/**
 * A port number, or a range written "low-high".
 */
export type PortItem = (number | string)

/**
 * A portwarden policy: which ports may be open on a host, to which source networks, and by which program.
 */
export interface Policy {
/**
 * Version of the policy language. Only 1 exists.
 */
version: 1
/**
 * deny: the generated firewall drops what no rule opens, and a listener no rule covers is a finding. allow: the firewall only drops what deny rules name.
 */
default?: ("deny" | "allow")
/**
 * allow: listeners bound only to loopback are not findings unless a rule denies them. audit: report them like any other listener.
 */
loopback?: ("allow" | "audit")
/**
 * How the generated firewall refuses a connection: drop (silently discard; the client times out) or reject (TCP reset / ICMP unreachable; the client fails at once).
 */
refuse?: ("drop" | "reject")
/**
 * Named groups of source addresses: IPv4/IPv6 addresses, CIDR prefixes, or names of other groups.
 */
sources?: {
[k: string]: SourceList
}
/**
 * Rules in order: the first rule whose proto and port match a listener decides.
 */
rules: Rule[]
/**
 * Overlays for fleets: the rules of every overlay whose glob matches the hostname are placed before the base rules, in file order.
 */
hosts?: HostOverlay[]
/**
 * Policy fragments (README "Policy fragments"): paths or globs (* and ? in the file name only), relative to this file's directory; each entry's matches in name order, entries in the order written, each file once; a path without a wildcard must exist. A fragment is a policy file with only version (optional), sources, rules and hosts: its groups join this file's (each name defined once), its rules come after this file's rules (first match decides), its overlays after this file's overlays.
 */
include?: string[]
}
/**
 * What may listen on one or more ports, reachable from which sources, held by which programs.
 */
export interface Rule {
/**
 * A unique name for the rule; it appears in findings and as a comment in generated firewall rules.
 */
name: string
/**
 * A port number, a "low-high" range, or a list of them.
 */
port: (PortItem | [PortItem, ...(PortItem)[]])
/**
 * Transport protocol the rule covers.
 */
proto?: ("tcp" | "udp")
/**
 * Who may connect: any, localhost (must be bound to loopback only; the firewall opens nothing), or a list of group names, addresses and CIDRs.
 */
from?: (string | [string, ...(string)[]])
/**
 * Programs allowed to hold the port: names as in /proc/PID/comm, or absolute executable paths.
 * 
 * @minItems 1
 */
process?: [string, ...(string)[]]
/**
 * Raise a missing-listener finding when nothing listens on the rule's ports.
 */
required?: boolean
/**
 * Per-source limit on new connections, like 30/minute; beyond it new connections are refused.
 */
rate?: string
/**
 * Log (rate-limited, with a prefix naming the rule) and count refused connection attempts on the rule's ports.
 */
log?: boolean
/**
 * allow: the rule opens its ports to its sources. deny: listening on these ports is a finding and the firewall refuses them.
 */
action?: ("allow" | "deny")
expect?: ServiceExpect
}
/**
 * What the service on the rule's TCP ports must offer, checked by connecting to it: by check and by the agent (every service_interval) on the host, and by probe from outside.
 */
export interface ServiceExpect {
/**
 * implicit: TLS from the first byte (465, 993, 995, any port). starttls: the service's own upgrade (SMTP on 25/587, IMAP 143, POP3 110, PostgreSQL 5432). none: no TLS expected.
 */
tls?: ("implicit" | "starttls" | "none")
/**
 * Lowest TLS version the service may accept; a handshake at an older version is tls-weak.
 */
tls_min?: ("1.2" | "1.3")
/**
 * The certificate must stay valid at least this many more days (cert-expiring).
 */
cert_days?: number
/**
 * Names the certificate must be valid for, checked as a client checks them (wildcards included): cert-name-mismatch.
 * 
 * @minItems 1
 */
cert_names?: [string, ...(string)[]]
smtp?: SmtpExpect
}
/**
 * SMTP only (ports 25, 465, 587).
 */
export interface SmtpExpect {
/**
 * refuse: mail for a domain the server is not responsible for must be refused to strangers (probe's relay test; open-relay).
 */
relay?: "refuse"
/**
 * tls-only: AUTH must not be offered before STARTTLS (smtp-plaintext-auth).
 */
auth?: "tls-only"
}
/**
 * Rules that apply only on hosts whose name matches a glob.
 */
export interface HostOverlay {
/**
 * Hostname glob: * matches any run of characters, ? one character.
 */
match: string
/**
 * Rules for matching hosts; they are checked before the base rules.
 */
rules: Rule[]
}
