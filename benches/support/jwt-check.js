import crypto from 'crypto';
var SECRET = 'SECRET_VALUE';
function unauthorized() { return { statusCode: 401, statusDescription: 'Unauthorized' }; }
function handler(event) {
    var request = event.request;
    var auth = request.headers.authorization;
    if (!auth || auth.value.indexOf('Bearer ') !== 0) { return unauthorized(); }
    var parts = auth.value.slice(7).split('.');
    if (parts.length !== 3) { return unauthorized(); }
    var expected = crypto.createHmac('sha256', SECRET).update(parts[0] + '.' + parts[1]).digest('base64url');
    if (expected !== parts[2]) { return unauthorized(); }
    var claims;
    try { claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()); } catch (e) { return unauthorized(); }
    var now = Math.floor(Date.now() / 1000);
    if (claims.exp !== undefined && now >= claims.exp) { return unauthorized(); }
    if (claims.nbf !== undefined && now < claims.nbf) { return unauthorized(); }
    request.headers['x-jwt-sub'] = { value: String(claims.sub) };
    return request;
}
