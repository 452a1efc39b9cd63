// A real SMTP server process on loopback (the smtp-server library), printing each message it
// receives as one JSON line: {from, to, raw}. Prints "ready <port>" first.
import { SMTPServer } from 'smtp-server';

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  onData(stream, session, callback) {
    let raw = '';
    stream.on('data', (d: Buffer) => (raw += d.toString()));
    stream.on('end', () => {
      process.stdout.write(JSON.stringify({ from: session.envelope.mailFrom && session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address), raw }) + '\n');
      callback();
    });
  },
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.server.address();
  process.stdout.write(`ready ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
