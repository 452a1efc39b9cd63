// What exposure needs to know of the host's network besides its ruleset: its addresses and its
// routes. Types only, shared by the packet path, neighbour discovery and exposure.
import type { Fam } from './intervals.js';

/** An address of this host's interface, with its prefix ("192.0.2.1/24"). */
export interface InterfaceAddress {
  iface: string;
  cidr: string;
}

/** A route of this host: sources in `dst` are answered through `iface`. */
export interface Route {
  iface: string;
  family: Fam;
  dst: string;
}
