// Lambda@Edge, origin-response: an origin 404 becomes a 302 to a fallback page (callback form).
'use strict';

exports.handler = (event, context, callback) => {
    const response = event.Records[0].cf.response;
    if (response.status === '404') {
        const uri = event.Records[0].cf.request.uri;
        callback(null, {
            status: '302',
            statusDescription: 'Found',
            headers: {
                location: [{ key: 'Location', value: '/fallback.html?from=' + encodeURIComponent(uri) }],
                'cache-control': [{ key: 'Cache-Control', value: 'max-age=60' }],
            },
        });
        return;
    }
    callback(null, response);
};
