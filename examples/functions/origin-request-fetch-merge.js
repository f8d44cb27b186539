// Lambda@Edge, origin-request: fetch the viewer's profile from a second origin and merge it into
// a generated page, without contacting the behavior's origin. The profile origin must be on the
// function's allow-list:
//
//   [functions.merge]
//   runtime = "lambda-edge"
//   code = "functions/origin-request-fetch-merge.js"
//   fetch = ["profiles"]          # origins by name; their URLs are the only ones fetch reaches
//
// PROFILE_ORIGIN is that origin's URL.
'use strict';

const PROFILE_ORIGIN = 'http://127.0.0.1:8082';

function cookie(request, name) {
    for (const header of request.headers.cookie || []) {
        for (const part of header.value.split(';')) {
            const [key, ...rest] = part.trim().split('=');
            if (key === name) {
                return rest.join('=');
            }
        }
    }
    return undefined;
}

exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const user = cookie(request, 'user') || 'anonymous';
    let profile = null;
    try {
        const res = await fetch(`${PROFILE_ORIGIN}/echo/profile?user=${encodeURIComponent(user)}`, {
            headers: { accept: 'application/json' },
        });
        if (!res.ok) {
            throw new Error(`the profile origin answered ${res.status}`);
        }
        profile = await res.json();
    } catch (err) {
        // The page still renders without a profile; the reason goes to the log.
        console.warn('profile unavailable: %s', err.message);
    }
    return {
        status: '200',
        statusDescription: 'OK',
        headers: {
            'content-type': [{ key: 'Content-Type', value: 'application/json' }],
            'cache-control': [{ key: 'Cache-Control', value: 'private, no-store' }],
        },
        body: JSON.stringify({ page: request.uri, user, profile }),
    };
};
