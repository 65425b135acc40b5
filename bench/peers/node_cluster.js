// Node.js cluster in round-robin mode for the peers benchmark: the primary accepts every
// connection and hands its handle to a worker over IPC, the design closest to fdpass serve.
// Usage: node node_cluster.js WORKERS [PORT]. Prints "ready <port>" once every worker listens;
// SIGTERM stops the workers and the primary. Answers like fdpass's http handler, then closes.
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
	let conn = 0;
	const server = http.createServer((req, res) => {
		conn++;
		const body = `worker=${index} pid=${process.pid} generation=1 conn=${conn} ` +
			`id=${conn} peer=${req.socket.remoteAddress}:${req.socket.remotePort}\n`;
		res.sendDate = false;
		res.writeHead(200, {
			'Content-Type': 'text/plain',
			'Content-Length': Buffer.byteLength(body),
			'Connection': 'close',
		});
		res.end(body);
	});
	server.listen(port, '127.0.0.1');
	process.on('SIGTERM', () => process.exit(0));
}
