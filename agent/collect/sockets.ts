// What every socket collector returns: a bound socket, before its owners are known.
import type { Family, Proto } from '../model.js';

export interface RawSocket {
  proto: Proto;
  family: Family;
  address: string;
  port: number;
  interface?: string;
  inode: number;
  dualStack: boolean;
}
