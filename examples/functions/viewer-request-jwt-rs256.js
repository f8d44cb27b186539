// Lambda@Edge, viewer-request: JWT (RS256) check with require('crypto') and the public key
// bundled with the function. A missing, badly signed or expired token gets a 401.
'use strict';

const crypto = require('crypto');

const PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlh8zG+XUZyd3xLSeyXQA
2lo7okfBq8ooTcJC25R3LNNpyqOJaoILPGP/h/UzGJaTOZqcwlGYV109Yluffw6m
ObsqTsEjy+GpKvQalmAyhs5hLHoaSkfijAqrnb6ZZzW4rkbObUvQOnOMQYCU/p0v
JEyWAVPC0yfAo/2W87lv9SMwzDZUDgddUoFSfVDydB43L3go9f9aESoZQs3qN4hH
W6y1tcliOjs/uyx4Qf/YiWvh/rcvDICbKWgQLkT5lqMCGzmXnHQmZLsSg8wxwQcX
1RBYb93NYM6dajlnJ1qO7WBQmEuXw6hpDTmxQp4JZjPS+jnjlb8tfnnbpS5t0xuX
hQIDAQAB
-----END PUBLIC KEY-----`;

function unauthorized(why) {
    return {
        status: '401',
        statusDescription: 'Unauthorized',
        headers: {
            'www-authenticate': [{ key: 'WWW-Authenticate', value: 'Bearer error="invalid_token"' }],
            'content-type': [{ key: 'Content-Type', value: 'text/plain' }],
        },
        body: why,
    };
}

function base64url(text) {
    return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const auth = request.headers.authorization ? request.headers.authorization[0].value : '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const parts = token.split('.');
    if (parts.length !== 3) {
        return unauthorized('missing token');
    }
    const header = JSON.parse(base64url(parts[0]).toString('utf8'));
    if (header.alg !== 'RS256') {
        return unauthorized('unexpected algorithm');
    }
    const verifier = crypto.createVerify('RSA-SHA256');
    verifier.update(parts[0] + '.' + parts[1]);
    if (!verifier.verify(PUBLIC_KEY, base64url(parts[2]))) {
        return unauthorized('bad signature');
    }
    const claims = JSON.parse(base64url(parts[1]).toString('utf8'));
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
        return unauthorized('expired');
    }
    request.headers['x-user'] = [{ key: 'X-User', value: String(claims.sub) }];
    return request;
};
