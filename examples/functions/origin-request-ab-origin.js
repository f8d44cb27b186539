// Lambda@Edge, origin-request: A/B routing by cookie. Viewers in bucket "b" (cookie ab=b) go to
// the second origin; everyone else to the behavior's origin. The Host header follows the new
// origin, as CloudFront needs it to.
'use strict';

const ORIGIN_B = { domainName: 'localhost', port: 8082 };

exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const cookies = (request.headers.cookie || []).map((h) => h.value).join(';');
    const bucket = /(?:^|;\s*)ab=b(?:;|$)/.test(cookies) ? 'b' : 'a';
    if (bucket === 'b') {
        request.origin.custom.domainName = ORIGIN_B.domainName;
        request.origin.custom.port = ORIGIN_B.port;
        request.origin.custom.protocol = 'http';
        request.headers.host = [{ key: 'Host', value: ORIGIN_B.domainName }];
    }
    request.headers['x-ab-bucket'] = [{ key: 'X-AB-Bucket', value: bucket }];
    return request;
};
