// An SMSC built on node-smpp (the npm package "smpp"), for tests/test_interop.py.
//
// Usage: node smsc.js [port]   (0 or nothing: any free port on 127.0.0.1)
//
// Prints "LISTENING <port>" first, then one JSON object per line for every PDU
// it receives ("dir": "in") or sends ("dir": "out") and for every session event,
// so that the test can assert what this peer saw on the wire.
//
// Behaviour:
// - bind_transceiver with system_id "interop" and password "pw" is accepted;
//   any other bind is refused with ESME_RBINDFAIL;
// - submit_sm from a bound session is answered with a fresh message_id, then a
//   deliver_sm goes back on the same session, from the submit's destination to
//   its source, with the text "echo:" + the submitted text (GSM 03.38, data_coding 0,
//   encoded by node-smpp itself);
// - enquire_link is answered; unbind is answered and the session is closed.
//
// Commands, one a line on standard input:
// - "unbind": unbind every session (closing each once its unbind_resp arrives).
// The process ends when its standard input closes, so that it never outlives the test.

'use strict';

const smpp = require('smpp');

const SYSTEM_ID = 'interop';
const PASSWORD = 'pw';

// node-smpp decodes short_message into text and forgets the bytes; keep each
// received frame (not enumerable, so that node-smpp's own field loops skip it)
// so the log can show exactly what arrived.
const originalFromBuffer = smpp.PDU.prototype.fromBuffer;
smpp.PDU.prototype.fromBuffer = function (buffer) {
	Object.defineProperty(this, 'raw', {value: Buffer.from(buffer), enumerable: false});
	return originalFromBuffer.call(this, buffer);
};

function emit(record) {
	process.stdout.write(JSON.stringify(record) + '\n');
}

// The mandatory fields read straight from the frame with node-smpp's own field
// types but without its text filters: short_message stays bytes.
function rawFields(pdu) {
	const fields = {};
	if (!pdu.raw) {
		return fields;
	}
	const params = (smpp.commands[pdu.command] || {}).params || {};
	let offset = 16;
	for (const key of Object.keys(params)) {
		if (offset >= pdu.raw.length) {
			break;
		}
		const value = params[key].type.read(pdu.raw, offset);
		fields[key] = value;
		offset += params[key].type.size(value);
	}
	return fields;
}

function describe(pdu, dir, sessionId) {
	const record = {dir: dir, session: sessionId, pdu: pdu.command,
		command_status: pdu.command_status, sequence_number: pdu.sequence_number};
	for (const key of Object.keys(pdu)) {
		if (key in record || key === 'command' || key === 'command_id' || key === 'command_length') {
			continue;
		}
		const value = pdu[key];
		if (key === 'short_message' || key === 'message_payload') {
			// Decoded text as node-smpp reads it (or writes it, when it is a string).
			if (typeof value === 'string') {
				record[key + '_text'] = value;
			} else if (value && typeof value.message === 'string') {
				record[key + '_text'] = value.message;
			} else if (Buffer.isBuffer(value)) {
				record[key + '_hex'] = value.toString('hex');
			}
			continue;
		}
		if (Buffer.isBuffer(value)) {
			record[key + '_hex'] = value.toString('hex');
		} else if (value instanceof Date) {
			record[key] = value.toISOString();
		} else if (typeof value !== 'function') {
			record[key] = value;
		}
	}
	if (pdu.raw) {
		record.raw_hex = pdu.raw.toString('hex');
		const fields = rawFields(pdu);
		if (Buffer.isBuffer(fields.short_message)) {
			record.short_message_hex = fields.short_message.toString('hex');
		}
	}
	return record;
}

let sessions = 0;
let messages = 0;

const server = smpp.createServer(function (session) {
	const sessionId = ++sessions;
	let bound = false;
	emit({event: 'session', session: sessionId});

	session.on('pdu', function (pdu) {
		emit(describe(pdu, 'in', sessionId));
	});
	session.on('send', function (pdu) {
		emit(describe(pdu, 'out', sessionId));
	});
	session.on('error', function (error) {
		emit({event: 'error', session: sessionId, message: String(error && error.message)});
	});
	session.on('close', function () {
		emit({event: 'close', session: sessionId});
	});

	function refuseBind(pdu) {
		session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
	}
	session.on('bind_transmitter', refuseBind);
	session.on('bind_receiver', refuseBind);
	session.on('bind_transceiver', function (pdu) {
		if (bound || pdu.system_id !== SYSTEM_ID || pdu.password !== PASSWORD) {
			refuseBind(pdu);
			return;
		}
		bound = true;
		session.send(pdu.response({system_id: 'node-smpp'}));
	});

	session.on('submit_sm', function (pdu) {
		if (!bound) {
			session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		const text = pdu.short_message && typeof pdu.short_message.message === 'string'
			? pdu.short_message.message : '';
		session.send(pdu.response({message_id: 'node-' + (++messages)}));
		// A mobile-originated reply: from the recipient back to the sender.
		session.deliver_sm({
			source_addr_ton: pdu.dest_addr_ton,
			source_addr_npi: pdu.dest_addr_npi,
			source_addr: pdu.destination_addr,
			dest_addr_ton: pdu.source_addr_ton,
			dest_addr_npi: pdu.source_addr_npi,
			destination_addr: pdu.source_addr,
			data_coding: 0,
			short_message: 'echo:' + text,
		});
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
	session.on('unknown', function (pdu) {
		session.send(pdu.response());
	});
});

const port = Number(process.argv[2] || 0);
server.listen(port, '127.0.0.1', function () {
	process.stdout.write('LISTENING ' + server.address().port + '\n');
});

function command(line) {
	if (line === 'unbind') {
		for (const session of server.sessions.slice()) {
			session.unbind(function () {
				session.close();
			});
		}
	} else if (line) {
		emit({event: 'unknown-command', command: line});
	}
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function (chunk) {
	input += chunk;
	let end;
	while ((end = input.indexOf('\n')) >= 0) {
		command(input.slice(0, end).trim());
		input = input.slice(end + 1);
	}
});
process.stdin.on('end', function () {
	process.exit(0);
});
