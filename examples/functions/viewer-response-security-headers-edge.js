// Lambda@Edge, viewer-response: security headers on every answer (ES module form).
export const handler = async (event) => {
    const response = event.Records[0].cf.response;
    const headers = response.headers;
    headers['strict-transport-security'] = [{ key: 'Strict-Transport-Security', value: 'max-age=63072000; includeSubDomains; preload' }];
    headers['x-content-type-options'] = [{ key: 'X-Content-Type-Options', value: 'nosniff' }];
    headers['x-frame-options'] = [{ key: 'X-Frame-Options', value: 'DENY' }];
    headers['referrer-policy'] = [{ key: 'Referrer-Policy', value: 'same-origin' }];
    return response;
};
