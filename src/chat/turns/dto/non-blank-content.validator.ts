import { registerDecorator, type ValidationArguments } from 'class-validator';

/** Whitespace and invisible format characters (zero-width space, joiners, BOM…) say nothing. */
const INVISIBLE = /[\s\p{Cf}]/gu;

export function isBlank(text: string): boolean {
  return text.replace(INVISIBLE, '') === '';
}

interface ImageOptions {
  force?: unknown;
  mode?: unknown;
  image_prompt?: unknown;
}

/** A forced image_only turn may leave `content` blank: then `image.image_prompt` says what to draw. */
function drawsFromPrompt(request: { image?: ImageOptions }): boolean {
  return request.image?.force === true && request.image.mode === 'image_only';
}

/**
 * `content` must say something, except in a forced image_only turn, where content and
 * `image.image_prompt` together must (docs/api-reference.md §3).
 */
export function NonBlankContent(): PropertyDecorator {
  return (target, propertyName) =>
    registerDecorator({
      name: 'nonBlankContent',
      target: target.constructor,
      propertyName: String(propertyName),
      validator: {
        validate(value: unknown, args: ValidationArguments): boolean {
          if (typeof value !== 'string') return true;
          const request = args.object as { image?: ImageOptions };
          if (!drawsFromPrompt(request)) return !isBlank(value);
          const prompt = request.image?.image_prompt;
          return !isBlank(value + (typeof prompt === 'string' ? prompt : ''));
        },
        defaultMessage(args: ValidationArguments): string {
          return drawsFromPrompt(args.object as { image?: ImageOptions })
            ? 'content or image.image_prompt must not be blank'
            : 'content must not be blank';
        },
      },
    });
}
