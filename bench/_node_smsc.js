// The benchmark's independent SMSC: node-smpp (the npm package "smpp", installed
// by .ci/interop-setup into tests/interop/node_modules), as a user would stand one up.
//
// Usage: node bench/_node_smsc.js [--port N] [--log-pdus]
//
// Prints "LISTENING <port>" first.  Any bind is accepted; every submit_sm from
// a bound session is answered ESME_ROK with a fresh message_id; enquire_link
// and unbind are answered.  With --log-pdus every PDU in and out is written to
// standard output as one line, as a test SMSC logs its traffic.  On the line
// "stats" on standard input it prints one JSON line {"submits": N}; it ends
// when standard input closes, so that it never outlives the benchmark.

'use strict';

const path = require('path');
const smpp = require(path.join(__dirname, '..', 'tests', 'interop', 'node_modules', 'smpp'));

let port = 0;
let logPdus = false;
for (let i = 2; i < process.argv.length; i++) {
	if (process.argv[i] === '--port') {
		port = Number(process.argv[++i]);
	} else if (process.argv[i] === '--log-pdus') {
		logPdus = true;
	} else {
		process.stderr.write('unknown argument ' + process.argv[i] + '\n');
		process.exit(2);
	}
}

let submits = 0;

const server = smpp.createServer(function (session) {
	let bound = false;
	if (logPdus) {
		session.on('pdu', function (pdu) {
			process.stdout.write('in ' + pdu.command + ' #' + pdu.sequence_number + '\n');
		});
		session.on('send', function (pdu) {
			process.stdout.write('out ' + pdu.command + ' #' + pdu.sequence_number + '\n');
		});
	}
	session.on('error', function () {});
	function bind(pdu) {
		bound = true;
		session.send(pdu.response({system_id: 'node-smpp'}));
	}
	session.on('bind_transmitter', bind);
	session.on('bind_receiver', bind);
	session.on('bind_transceiver', bind);
	session.on('submit_sm', function (pdu) {
		if (!bound) {
			session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		submits++;
		session.send(pdu.response({message_id: 'n' + submits}));
	});
	session.on('enquire_link', function (pdu) {
		session.send(pdu.response());
	});
	session.on('unbind', function (pdu) {
		bound = false;
		session.send(pdu.response(), function () {
			session.close();
		});
	});
});

server.listen(port, '127.0.0.1', function () {
	process.stdout.write('LISTENING ' + server.address().port + '\n');
});

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function (chunk) {
	input += chunk;
	let end;
	while ((end = input.indexOf('\n')) >= 0) {
		const line = input.slice(0, end).trim();
		input = input.slice(end + 1);
		if (line === 'stats') {
			process.stdout.write(JSON.stringify({submits: submits}) + '\n');
		}
	}
});
process.stdin.on('end', function () {
	process.exit(0);
});
