import { ActionPlannerService } from './action-planner.service.js';

describe('ActionPlannerService', () => {
  const planner = new ActionPlannerService();

  it.each([
    'draw me a cat',
    'Can you paint a sunset over the sea?',
    'generate an image of a red bicycle',
    'show me a picture of Paris at night',
    '给我画一只猫',
    '帮我生成一张海边日落的图片',
    '来张可爱的小狗照片',
  ])('recognises a request for a picture: %s', (content) => {
    expect(planner.plan(content, 'text_image')).toBe('reply_text_image');
    expect(planner.plan(content, 'image_only')).toBe('reply_image');
  });

  it.each([
    'hello',
    'What is the capital of France?',
    '你好',
    '今天天气怎么样？',
    "please don't draw anything, just explain",
    '不要画图，解释一下',
  ])('keeps plain conversation as text: %s', (content) => {
    expect(planner.plan(content, 'text_image')).toBe('reply_text');
  });
});
