// Runs the CLI in this process and reports its peak RSS (KiB) on stderr at exit.
process.on('exit', () => process.stderr.write(`\nmaxrss_kib=${process.resourceUsage().maxRSS}\n`));
await import('../../agent/cli.js');
