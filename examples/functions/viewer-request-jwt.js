// JWT (HS256) validation at viewer-request, in the style of the AWS samples: the secret comes
// from the function's KeyValueStore (key `jwt.secret`); 401 for a missing, malformed, badly
// signed, expired or not-yet-valid token; otherwise the request goes on.
import cf from 'cloudfront';
import crypto from 'crypto';

const kvsHandle = cf.kvs();

function unauthorized(message) {
    return {
        statusCode: 401,
        statusDescription: 'Unauthorized',
        headers: { 'www-authenticate': { value: 'Bearer error="invalid_token", error_description="' + message + '"' } },
    };
}

function base64urlDecode(part) {
    var s = part.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    return atob(s);
}

async function handler(event) {
    var request = event.request;
    var auth = request.headers.authorization;
    if (!auth || auth.value.indexOf('Bearer ') !== 0) {
        return unauthorized('missing token');
    }
    var parts = auth.value.slice(7).split('.');
    if (parts.length !== 3) {
        return unauthorized('malformed token');
    }
    var secret = await kvsHandle.get('jwt.secret');
    var expected = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest('base64url');
    if (expected !== parts[2]) {
        return unauthorized('bad signature');
    }
    var claims;
    try {
        claims = JSON.parse(base64urlDecode(parts[1]));
    } catch (e) {
        return unauthorized('malformed token');
    }
    var now = Math.floor(Date.now() / 1000);
    if (claims.exp !== undefined && now >= claims.exp) {
        return unauthorized('expired');
    }
    if (claims.nbf !== undefined && now < claims.nbf) {
        return unauthorized('not yet valid');
    }
    request.headers['x-jwt-sub'] = { value: String(claims.sub) };
    return request;
}
