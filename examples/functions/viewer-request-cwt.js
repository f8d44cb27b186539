// CBOR Web Token (CWT, HS256) validation at viewer-request with `cf.cwt.validateToken`: the key
// comes from the function's KeyValueStore (key `cwt.key`), the token from the `x-cwt-token`
// header (base64url). `validateToken` checks the MAC and throws on a bad token; the claims it
// returns are keyed by their CWT labels, and checking them is the function's job.
import cf from 'cloudfront';

const kvsHandle = cf.kvs();

// RFC 8392 claim labels.
const SUB = 2;
const EXP = 4;
const NBF = 5;

function unauthorized(message) {
    return {
        statusCode: 401,
        statusDescription: 'Unauthorized',
        headers: { 'www-authenticate': { value: 'CWT error="invalid_token", error_description="' + message + '"' } },
    };
}

async function handler(event) {
    var request = event.request;
    var header = request.headers['x-cwt-token'];
    if (!header) {
        return unauthorized('missing token');
    }
    var claims;
    try {
        claims = cf.cwt.validateToken(header.value, { key: await kvsHandle.get('cwt.key') });
    } catch (e) {
        return unauthorized('invalid token');
    }
    var now = Math.floor(Date.now() / 1000);
    if (claims[EXP] !== undefined && now >= claims[EXP]) {
        return unauthorized('expired');
    }
    if (claims[NBF] !== undefined && now < claims[NBF]) {
        return unauthorized('not yet valid');
    }
    request.headers['x-cwt-sub'] = { value: String(claims[SUB]) };
    return request;
}
