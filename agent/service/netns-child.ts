// Runs inside a network namespace (nsenter --net=… node netns-child.js): reads service targets as
// JSON on stdin, writes their observations as JSON on stdout.
import { readFileSync } from 'node:fs';
import { observeAll } from './host.js';
import type { ServiceTarget } from './observe.js';

const targets = JSON.parse(readFileSync(0, 'utf8')) as ServiceTarget[];
process.stdout.write(JSON.stringify(await observeAll(targets)));
