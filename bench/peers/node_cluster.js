// Node.js cluster in round-robin mode for the peers benchmark: the primary accepts every
// connection and hands its handle to a worker over IPC, the design closest to fdpass serve.
// Usage: node node_cluster.js WORKERS [PORT]. Prints "ready <port>" once every worker listens;
// SIGTERM stops the workers and the primary. Answers like fdpass's http handler, then closes;
// like it, a request for /pad/N (N up to 1 MiB) gets the body padded with 'x' to N bytes.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

cluster.schedulingPolicy = cluster.SCHED_RR; // before the first fork; RR is also the default

const workers = Number(process.argv[2] || 2);
const port = Number(process.argv[3] || 0);

if (cluster.isPrimary) {
	let listening = 0;
	let stopping = false;
	cluster.on('listening', (w, address) => {
		if (++listening === workers)
			process.stdout.write(`ready ${address.port}\n`);
	});
	cluster.on('exit', () => {
		if (!stopping) {
			console.error('node_cluster: a worker died; stopping');
			stop(1);
		} else if (Object.keys(cluster.workers).length === 0) {
			process.exit(0);
		}
	});
	const stop = (code) => {
		stopping = true;
		process.exitCode = code;
		for (const w of Object.values(cluster.workers))
			w.process.kill('SIGTERM');
		setTimeout(() => process.exit(code), 3000).unref();
	};
	process.on('SIGTERM', () => stop(0));
	process.on('SIGINT', () => stop(0));
	for (let i = 0; i < workers; i++)
		cluster.fork({NODE_CLUSTER_INDEX: String(i)});
} else {
	const index = process.env.NODE_CLUSTER_INDEX;
	const padMax = 1 << 20;
	const pad = Buffer.alloc(padMax, 'x');
	let conn = 0;
	const server = http.createServer((req, res) => {
		conn++;
		const body = `worker=${index} pid=${process.pid} generation=1 conn=${conn} ` +
			`id=${conn} peer=${req.socket.remoteAddress}:${req.socket.remotePort}\n`;
		const m = /^\/pad\/([0-9]+)$/.exec(req.url);
		const want = m && Number(m[1]) <= padMax ? Number(m[1]) : 0;
		const len = Math.max(want, Buffer.byteLength(body));
		res.sendDate = false;
		res.writeHead(200, {
			'Content-Type': 'text/plain',
			'Content-Length': len,
			'Connection': 'close',
		});
		if (len > Buffer.byteLength(body)) {
			res.write(body);
			res.end(pad.subarray(0, len - Buffer.byteLength(body)));
		} else {
			res.end(body);
		}
	});
	server.listen(port, '127.0.0.1');
	process.on('SIGTERM', () => process.exit(0));
}
