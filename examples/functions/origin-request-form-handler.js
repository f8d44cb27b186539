// Lambda@Edge, origin-request with include_body: a contact form POST is checked and answered
// at the edge; the origin never sees it. Anything else goes on to the origin.
//
//   origin_request = { function = "form", include_body = true }
'use strict';

const querystring = require('querystring');

function reply(status, description, payload) {
    return {
        status: String(status),
        statusDescription: description,
        headers: {
            'content-type': [{ key: 'Content-Type', value: 'application/json' }],
            'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
        },
        body: JSON.stringify(payload),
    };
}

exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    if (request.method !== 'POST' || !request.body) {
        return request;
    }
    if (request.body.inputTruncated) {
        return reply(413, 'Payload Too Large', { error: 'the form is too large' });
    }
    const text = Buffer.from(request.body.data, 'base64').toString('utf8');
    const form = querystring.parse(text);
    const missing = ['name', 'email', 'message'].filter((field) => !form[field]);
    if (missing.length > 0) {
        return reply(400, 'Bad Request', { error: 'missing fields', missing });
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(form.email)) {
        return reply(400, 'Bad Request', { error: 'the email address is not valid' });
    }
    return reply(200, 'OK', {
        received: { name: form.name, email: form.email, length: form.message.length },
    });
};
