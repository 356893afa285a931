import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  fromWire,
  InvalidMessageError,
  NoHandlerError,
  NotAuthorizedError,
  RelaisError,
  RemoteError,
  RequestEndedError,
  ResponseCode,
  TimeoutError,
  toWire,
  UnknownTokenError,
} from '../../src/protocol/errors.js';

describe('errors', () => {
  it('errors - a module error keeps its code and details across the wire', () => {
    class DiskFullError extends Error {
      responseCode = 107;
      details = { disk: 'sda' };
    }
    const wire = toWire(new DiskFullError('disk sda is full'));
    assert.equal(wire.responseCode, 107);
    const back = fromWire(JSON.parse(JSON.stringify(wire.error)), wire.responseCode, 'vm-usb');
    assert.ok(back instanceof RemoteError);
    assert.equal(back.responseCode, 107);
    assert.equal(back.message, 'disk sda is full');
    assert.deepEqual(back.details, { disk: 'sda' });
    assert.equal(back.handler, 'vm-usb');
  });

  it('errors - Relais codes come back as their own classes, with the remote error as cause', () => {
    for (const [error, klass] of [
      [new NoHandlerError('x'), NoHandlerError],
      [new NotAuthorizedError('x'), NotAuthorizedError],
      [new InvalidMessageError('x'), InvalidMessageError],
    ] as const) {
      const wire = toWire(error);
      const back = fromWire(wire.error, wire.responseCode, 'h');
      assert.ok(back instanceof klass, `${error.name} -> ${back.name}`);
      assert.ok(back.cause instanceof RemoteError);
    }
  });

  it('errors - the refusals of a kill travel as code 2 and come back as their own classes, told apart by type (protocol §11.5)', () => {
    for (const [error, klass, code] of [
      [new UnknownTokenError('token t is not in the history', { details: { token: 't' } }), UnknownTokenError, 'UNKNOWN_TOKEN'],
      [new RequestEndedError('request t has already ended', { details: { token: 't', kind: 'final', code: 0 } }), RequestEndedError, 'REQUEST_ENDED'],
    ] as const) {
      const wire = toWire(error);
      assert.equal(wire.responseCode, ResponseCode.INVALID_REQUEST);
      assert.equal(wire.error.name, klass.name);
      const back = fromWire(JSON.parse(JSON.stringify(wire.error)), wire.responseCode, 'relais-router');
      assert.ok(back instanceof klass, `${error.name} -> ${back.name}`);
      assert.ok(back instanceof InvalidMessageError, 'still a code-2 error for whoever does not tell them apart');
      assert.equal(back.code, code);
      assert.deepEqual(back.details, error.details);
    }
    const other = fromWire({ name: 'InvalidMessageError', message: 'bad query' }, ResponseCode.INVALID_REQUEST, 'relais-router');
    assert.ok(!(other instanceof UnknownTokenError) && !(other instanceof RequestEndedError));
    // Only own entries of the table count: a name from the prototype of an object is no error class.
    assert.equal(fromWire({ name: 'constructor', message: 'x' }, ResponseCode.INVALID_REQUEST, 'h').constructor, InvalidMessageError);
  });

  it('errors - a plain throw becomes code 1 and never code 0; stacks stay home', () => {
    const wire = toWire(new Error('boom'));
    assert.deepEqual(wire, { responseCode: ResponseCode.ERROR, error: { name: 'Error', message: 'boom' } });
    assert.equal(toWire(Object.assign(new Error('x'), { responseCode: 0 })).responseCode, 1);
    assert.equal(toWire('a string').error.message, 'a string');
  });

  it('errors - every class has a stable code and extends RelaisError', () => {
    const timeout = new TimeoutError('late');
    assert.ok(timeout instanceof RelaisError);
    assert.equal(timeout.code, 'TIMEOUT');
    assert.equal(timeout.name, 'TimeoutError');
    assert.equal(timeout.responseCode, ResponseCode.DEADLINE_EXCEEDED);
  });
});
